"""What a DICOM file's header declares for its pixel data, and how many bytes of it the file holds, read from the
file's element structure without decoding a pixel.

GDCM (SimpleITK's DICOM reader) decodes a slice whose Pixel Data is shorter than its header declares (Rows x Columns
x Samples per Pixel x Bits Allocated / 8 x Number of Frames) by filling the rest from whatever memory follows, so a
truncated file or a 1 kB file declaring 8000 x 8000 pixels reads "fine". :func:`pixel_bytes` walks the data set's
elements by their lengths (nested sequences skipped to their delimiters) up to the top-level Pixel Data and counts
the bytes that are really there, and, for compressed frames, the size each frame's codestream declares (a JPEG
codestream decodes to the size its own SOF marker gives, whatever the header says). A deflated data set is inflated
as it is read, never beyond its declared pixels and :data:`ELEMENTS_ROOM` bytes of other elements.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_PREAMBLE, _MAGIC = 128, b"DICM"  # a Part 10 file: 128 bytes, "DICM", the meta information, the data set
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"  # the whole data set, pixels included, raw-deflated: inflated here as it is read
# the transfer syntaxes that store pixels as they are; every other one encapsulates compressed frames (JPEG,
# JPEG-LS, JPEG 2000, RLE, ...) in fragments
_NATIVE_SYNTAXES = (_IMPLICIT_LITTLE, _EXPLICIT_LITTLE, _EXPLICIT_BIG, _DEFLATED)
# the compressed syntaxes read, by codec: JPEG processes 1-29 (.50-.66) and lossless SV1 (.70), JPEG-LS, JPEG 2000
# (Part 1 and 2, and High-Throughput JPEG 2000, whose codestreams open alike) and RLE (decoded to the declared size);
# every other one is refused before GDCM sees it
_CODECS = {
    **{f"1.2.840.10008.1.2.4.{n}": "JPEG" for n in (*range(50, 67), 70)},
    **{f"1.2.840.10008.1.2.4.{n}": "JPEG-LS" for n in (80, 81)},
    **{f"1.2.840.10008.1.2.4.{n}": "JPEG 2000" for n in (90, 91, 92, 93, 201, 202, 203)},
    "1.2.840.10008.1.2.5": "RLE",
}
ELEMENTS_ROOM = 16 << 20  # bytes a deflated data set may inflate to beyond its declared pixels (GDCM inflates it whole)
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}  # 32-bit lengths
_UNDEFINED = 0xFFFFFFFF  # the length of a value that runs to its delimiter
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_TRANSFER_SYNTAX = 0x00020010
_PIXEL_DATA = {0x7FE00008, 0x7FE00009, 0x7FE00010}  # Float, Double Float and (integer) Pixel Data
_IMAGE_TAGS = {
    0x00280002: "samples",
    0x00280008: "frames",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits",
}
# the tags that place a slice, and those that scale its values (which GDCM ignores where they are not numbers), kept
# as their text (decimal strings, backslash-separated)
_GEOMETRY_TAGS = {
    0x00200032: "position",  # Image Position (Patient): the first pixel's centre, mm
    0x00200037: "orientation",  # Image Orientation (Patient): row and column direction cosines
    0x00280030: "pixel_spacing",  # Pixel Spacing: between rows, between columns, mm
    0x00280004: "photometric",  # Photometric Interpretation: MONOCHROME1 shows low values bright
    0x00281052: "rescale_intercept",  # Rescale Intercept: added to the stored values, after the slope
    0x00281053: "rescale_slope",  # Rescale Slope: the stored values' factor
}
_GEOMETRY_TEXT = 256  # bytes a geometry tag's value may hold (the standard's decimal strings need at most 16 each)
_CHUNK = 1 << 20
_FRAME_HEAD = 1 << 20  # the bytes of a compressed frame searched for the size its codestream declares
# JPEG markers: SOF0-SOF15 (but DHT, JPG and DAC) and JPEG-LS's SOF55 hold the frame's size; TEM, RST0-7 and SOI
# stand alone; EOI and SOS end the search (a scan before a frame header: none declared)
_JPEG_FRAME_MARKERS = {*range(0xC0, 0xD0), 0xF7} - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD9)}
_JPEG_SOI, _J2K_SOC_SIZ = b"\xff\xd8", b"\xff\x4f\xff\x51"  # what opens a JPEG (or JPEG-LS) and a JPEG 2000 frame
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # a JP2 file's first box, wrapping a JPEG 2000 codestream


@dataclass(frozen=True)
class PixelBytes:
    """A DICOM file's pixel data: the image its header declares and the bytes the file holds of it."""

    rows: int
    columns: int
    samples: int  # per pixel
    bits: int  # allocated per sample
    frames: int
    syntax: str  # the transfer syntax UID
    # the bytes of Pixel Data in the file (for encapsulated data: in its fragments, offset table left out); pixels
    # stored as they are counted up to the declared size and one more byte
    present: int = 0
    complete: bool = False  # every length the Pixel Data element and its fragments state is there in the file
    length: int = 0  # the length the Pixel Data element states (pixels stored as they are)
    # (rows, columns, components) each JPEG, JPEG-LS or JPEG 2000 frame's codestream declares; None where it declares
    # none in its first bytes
    frame_sizes: tuple[tuple[int, int, int] | None, ...] = ()
    inflates_beyond: bool = False  # a deflated data set inflating to more than its declared pixels + ELEMENTS_ROOM
    # the top-level geometry and rescale tags the file holds, by name ("position", "orientation", "pixel_spacing",
    # "rescale_slope", "rescale_intercept"), as text
    geometry: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def declared(self) -> int:
        """Rows x Columns x Samples per Pixel x Bits Allocated / 8 x Number of Frames, in bytes."""
        return (self.rows * self.columns * self.samples * self.bits * self.frames + 7) // 8

    @property
    def compressed(self) -> bool:
        """Encapsulated compressed frames, legitimately fewer bytes than declared."""
        return self.syntax not in _NATIVE_SYNTAXES

    @property
    def codec(self) -> str | None:
        """The codec of compressed frames that GDCM decodes ("JPEG", "JPEG-LS", "JPEG 2000", "RLE"); None for other
        syntaxes."""
        return _CODECS.get(self.syntax)


@dataclass(frozen=True)
class _Elements:
    """A data set's element headers read one by one from a binary stream, in its transfer syntax's encoding."""

    stream: BinaryIO
    explicit: bool = True  # a VR follows each tag (the meta information and every syntax but implicit VR)
    big: bool = False

    def next(self) -> tuple[int, bytes, int] | None:
        """(tag, VR or b"", value length) of the next element; None at the end of the stream."""
        head = self.stream.read(8)
        if len(head) < 8:
            return None
        order = ">" if self.big else "<"
        group, element = struct.unpack(f"{order}HH", head[:4])
        tag, vr = group << 16 | element, head[4:6]
        if group == 0xFFFE or not self.explicit:  # items and delimiters carry no VR
            return tag, b"", struct.unpack(f"{order}I", head[4:])[0]
        if vr not in _LONG_VRS:
            return tag, vr, struct.unpack(f"{order}H", head[6:])[0]
        length = self.stream.read(4)
        return (tag, vr, struct.unpack(f"{order}I", length)[0]) if len(length) == 4 else None

    def inner(self, vr: bytes) -> _Elements:
        """The encoding inside an undefined-length value of this VR: a UN value's is implicit VR little endian."""
        return dataclasses.replace(self, explicit=False, big=False) if vr == b"UN" else self


class _Inflating(io.RawIOBase):
    """A raw-deflated stream, inflated as it is read up to one byte past ``limit`` bytes, where it ends (as a damaged
    stream ends where it stops inflating)."""

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        self._handle, self._inflater = handle, zlib.decompressobj(-zlib.MAX_WBITS)
        self.limit, self.inflated = limit, 0

    @property
    def beyond(self) -> bool:
        """Whether the stream inflates to more than ``limit`` bytes."""
        return self.inflated > self.limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        room = min(len(buffer), self.limit + 1 - self.inflated)
        while room > 0 and not self._inflater.eof:
            source = self._inflater.unconsumed_tail or self._handle.read(_CHUNK)
            if not source:
                break
            try:
                data = self._inflater.decompress(source, room)
            except zlib.error:
                break
            if data:
                buffer[: len(data)] = data
                self.inflated += len(data)
                return len(data)
        return 0


def _skip(stream: BinaryIO, count: int) -> int:
    """Move ``count`` bytes on, or to the end of the stream: how many bytes were passed."""
    if stream.seekable():
        start = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        return stream.seek(min(start + count, end)) - start
    passed = 0
    while passed < count and (chunk := stream.read(min(count - passed, _CHUNK))):
        passed += len(chunk)
    return passed


def _skip_undefined(elements: _Elements) -> None:
    """Skip an undefined-length value (a sequence, an item, a UN value) to its delimiter, nested ones included."""
    levels = [elements]
    while levels and (element := levels[-1].next()) is not None:
        tag, vr, length = element
        if tag in (_ITEM_END, _SEQUENCE_END):
            levels.pop()
        elif length == _UNDEFINED:
            levels.append(levels[-1].inner(vr))
        else:
            _skip(elements.stream, length)


def jpeg_size(head: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) a JPEG or JPEG-LS codestream's frame header (SOFn, SOF55) declares: height, width
    and component count after its precision byte; None where none comes before the first scan."""
    at = len(_JPEG_SOI) if head.startswith(_JPEG_SOI) else len(head)
    while at + 4 <= len(head) and head[at] == 0xFF:
        marker = head[at + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE_MARKERS:  # a fill byte, or a marker without a segment
            at += 1 if marker == 0xFF else 2
        elif marker in _JPEG_FRAME_MARKERS:
            return tuple(struct.unpack(">HHB", head[at + 5 : at + 10])) if at + 10 <= len(head) else None
        elif marker in (0xD9, 0xDA):  # EOI, SOS
            return None
        else:
            at += 2 + int.from_bytes(head[at + 2 : at + 4], "big")
    return None


def _jp2_codestream(head: bytes) -> int:
    """Where the codestream starts in a JP2 file: the contents of its contiguous codestream box (``jp2c``); the end
    of ``head`` where there is none."""
    at = 0
    while at + 8 <= len(head):
        length, box = struct.unpack(">I4s", head[at : at + 8])
        start = at + 8
        if length == 1:  # a 64-bit length follows
            length, start = int.from_bytes(head[at + 8 : at + 16], "big"), at + 16
        if box == b"jp2c":
            return start
        if length < start - at:  # 0 (to the end of the file) or damaged
            break
        at += length
    return len(head)


def _j2k_size(head: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) a JPEG 2000 codestream's SIZ marker declares (Ysiz - YOsiz, Xsiz - XOsiz, Csiz),
    inside a JP2 file where one wraps it; None where the codestream does not open with it."""
    at = _jp2_codestream(head) if head.startswith(_JP2_SIGNATURE) else 0
    if not head.startswith(_J2K_SOC_SIZ, at) or at + 42 > len(head):
        return None
    columns, rows, left, top = struct.unpack(">IIII", head[at + 8 : at + 24])
    return rows - top, columns - left, int.from_bytes(head[at + 40 : at + 42], "big")


_MEASURES = {"JPEG": jpeg_size, "JPEG-LS": jpeg_size, "JPEG 2000": _j2k_size}


class _FrameHeads:
    """The first bytes of each compressed frame, gathered as its fragments pass (a fragment that opens with a JPEG
    or JPEG 2000 start marker starts a frame, any other continues the frame before it), and the size each declares."""

    def __init__(self, measure: Callable[[bytes], tuple[int, int, int] | None]) -> None:
        self._measure, self._head = measure, bytearray()
        self._sizes: list[tuple[int, int, int] | None] = []  # of the frames before this one
        self._started = False

    def add(self, stream: BinaryIO, length: int) -> int:
        """Pass one fragment of ``length`` bytes, keeping what its frame's head still lacks; the bytes passed."""
        data = stream.read(min(length, len(_JP2_SIGNATURE)))
        if not self._started or data.startswith((_JPEG_SOI, _J2K_SOC_SIZ, _JP2_SIGNATURE)):
            if self._started:
                self._sizes.append(self._measure(bytes(self._head)))
            self._head, self._started = bytearray(), True
        data += stream.read(max(0, min(length, _FRAME_HEAD - len(self._head)) - len(data)))
        self._head += data[: _FRAME_HEAD - len(self._head)]
        return len(data) + _skip(stream, length - len(data))

    @property
    def sizes(self) -> tuple[tuple[int, int, int] | None, ...]:
        """The size each frame's codestream declares, this one's from its head so far."""
        return (*self._sizes, self._measure(bytes(self._head))) if self._started else tuple(self._sizes)


def _fragments(elements: _Elements, heads: _FrameHeads | None) -> tuple[int, bool]:
    """The bytes in an encapsulated Pixel Data's fragments (the first item, the offset table, left out), each
    frame's head given to ``heads``, and whether every item is whole and the sequence delimiter follows them."""
    present, first = 0, True
    while (element := elements.next()) is not None:
        tag, _, length = element
        if tag == _SEQUENCE_END:
            return present, True
        if tag != _ITEM or length == _UNDEFINED:
            break
        passed = _skip(elements.stream, length) if first or heads is None else heads.add(elements.stream, length)
        present += 0 if first else passed
        first = False
        if passed < length:
            break
    return present, False


def _is_part10(head: bytes) -> bool:
    """Whether a file's first bytes open a Part 10 file: 128 bytes of preamble, then "DICM"."""
    return head[_PREAMBLE : _PREAMBLE + len(_MAGIC)] == _MAGIC


def _is_vr(text: bytes) -> bool:
    """Whether two bytes read as an explicit value representation: two capital letters."""
    return len(text) == 2 and text.isalpha() and text.isupper()


def _opens_data_set(head: bytes) -> bool:
    """Whether a file's first bytes open a DICOM data set written without the Part 10 preamble (as GDCM reads it too):
    a little-endian element of the meta information (group 0002) or of the identifying group 0008, with an explicit
    VR of two capital letters or an implicit 32-bit length."""
    if len(head) < 8 or struct.unpack("<H", head[:2])[0] not in (0x0002, 0x0008):
        return False
    return _is_vr(head[4:6]) or struct.unpack("<I", head[4:8])[0] < 1 << 16


def looks_like_dicom(path: Path) -> bool:
    """Whether ``path`` is a DICOM file by its first bytes: a Part 10 file, or a data set without the preamble; a
    file that cannot be opened is not."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_PREAMBLE + len(_MAGIC))
    except OSError:
        return False
    return _is_part10(head) or _opens_data_set(head)


def _transfer_syntax(handle: BinaryIO) -> str:
    """The file's transfer syntax, from its meta information (always explicit VR little endian), the handle left at
    the data set. Without one: implicit VR little endian, the default, unless the first element has a VR."""
    handle.seek(_PREAMBLE + len(_MAGIC) if _is_part10(handle.read(_PREAMBLE + len(_MAGIC))) else 0)
    meta, syntax = _Elements(handle), None
    while True:
        start = handle.tell()
        element = meta.next()
        if element is None or element[0] >> 16 != 0x0002:
            handle.seek(start)
            break
        value = handle.read(min(element[2], 64))
        _skip(handle, element[2] - len(value))
        syntax = value.rstrip(b"\0 ").decode("ascii", "replace") if element[0] == _TRANSFER_SYNTAX else syntax
    if syntax is None:
        vr = handle.read(6)[4:]
        handle.seek(start)
        syntax = _EXPLICIT_LITTLE if _is_vr(vr) else _IMPLICIT_LITTLE
    return syntax


def _image(values: dict[str, bytes], geometry: dict[str, str], big: bool, syntax: str) -> PixelBytes:
    """The image the image tags' values declare: US numbers, and Number of Frames as text (1 when absent or not a
    whole number)."""
    order = "big" if big else "little"
    numbers = {key: int.from_bytes(value[:2], order) for key, value in values.items() if key != "frames"}
    frames = values.get("frames", b"1").strip(b"\0 ")
    image = {"samples": 1, "rows": 0, "columns": 0, "bits": 0} | numbers
    return PixelBytes(**image, frames=int(frames) if frames.isdigit() else 1, syntax=syntax, geometry=geometry)


def _header(elements: _Elements, syntax: str) -> tuple[PixelBytes, int | None]:
    """The image a data set declares, read up to its top-level Pixel Data, and the length that element states (None
    without one)."""
    values: dict[str, bytes] = {}
    geometry: dict[str, str] = {}
    while (element := elements.next()) is not None:
        tag, vr, length = element
        if tag in _PIXEL_DATA:
            return _image(values, geometry, elements.big, syntax), length
        if tag in _IMAGE_TAGS and length <= 16:
            values[_IMAGE_TAGS[tag]] = elements.stream.read(length)
        elif tag in _GEOMETRY_TAGS and length <= _GEOMETRY_TEXT:
            text = elements.stream.read(length).rstrip(b"\0 ").decode("ascii", "replace")
            geometry[_GEOMETRY_TAGS[tag]] = text
        elif length == _UNDEFINED:
            _skip_undefined(elements.inner(vr))
        else:
            _skip(elements.stream, length)
    return _image(values, geometry, elements.big, syntax), None


def _counted(elements: _Elements, header: PixelBytes, length: int) -> PixelBytes:
    """``header`` with what its Pixel Data, a value of ``length`` bytes, holds: pixels stored as they are counted up
    to one byte past the declared size; encapsulated ones in their fragments, with each frame's codestream size."""
    if length != _UNDEFINED:
        present = _skip(elements.stream, min(length, header.declared + 1))
        return dataclasses.replace(header, present=present, complete=present == length, length=length)
    measure = _MEASURES.get(header.codec or "")
    heads = _FrameHeads(measure) if measure else None
    present, complete = _fragments(elements, heads)
    return dataclasses.replace(header, present=present, complete=complete, frame_sizes=heads.sizes if heads else ())


def pixel_bytes(path: Path) -> PixelBytes:
    """The image ``path``'s header declares and the bytes of pixel data the file holds (none found: 0)."""
    with path.open("rb") as handle:
        syntax = _transfer_syntax(handle)
        inflating = _Inflating(handle, ELEMENTS_ROOM) if syntax == _DEFLATED else None
        stream = io.BufferedReader(inflating) if inflating else handle
        elements = _Elements(stream, explicit=syntax != _IMPLICIT_LITTLE, big=syntax == _EXPLICIT_BIG)
        header, length = _header(elements, syntax)
        if inflating:
            inflating.limit += header.declared + 1  # the pixels and the padding byte of an odd length
        pixels = header if length is None else _counted(elements, header, length)
        if inflating:
            _skip(stream, inflating.limit)  # on through the elements after the pixels, to the end or the limit
            pixels = dataclasses.replace(pixels, inflates_beyond=inflating.beyond)
    return pixels
