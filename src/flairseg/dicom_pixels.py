"""What a DICOM file's header declares for its pixel data, and how many bytes of it the file holds, read from the
file's element structure without decoding a pixel.

GDCM (SimpleITK's DICOM reader) decodes a slice whose Pixel Data is shorter than its header declares (Rows x Columns
x Samples per Pixel x Bits Allocated / 8 x Number of Frames) by filling the rest from whatever memory follows, so a
truncated file or a 1 kB file declaring 8000 x 8000 pixels reads "fine". :func:`pixel_bytes` walks the data set's
elements by their lengths (nested sequences skipped to their delimiters) up to the top-level Pixel Data and counts
the bytes that are really there.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
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
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PixelBytes:
    """A DICOM file's pixel data: the image its header declares and the bytes the file holds of it."""

    rows: int
    columns: int
    samples: int  # per pixel
    bits: int  # allocated per sample
    frames: int
    present: int  # the bytes of Pixel Data in the file (for encapsulated data: in its fragments, offset table left out)
    complete: bool  # every length the Pixel Data element and its fragments state is there in the file
    syntax: str  # the transfer syntax UID

    @property
    def declared(self) -> int:
        """Rows x Columns x Samples per Pixel x Bits Allocated / 8 x Number of Frames, in bytes."""
        return (self.rows * self.columns * self.samples * self.bits * self.frames + 7) // 8

    @property
    def compressed(self) -> bool:
        """Encapsulated compressed frames, legitimately fewer bytes than declared."""
        return self.syntax not in _NATIVE_SYNTAXES


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
    """A raw-deflated stream, inflated as it is read (a damaged stream ends where it stops inflating)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle, self._inflater = handle, zlib.decompressobj(-zlib.MAX_WBITS)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        while not self._inflater.eof:
            source = self._inflater.unconsumed_tail or self._handle.read(_CHUNK)
            if not source:
                break
            try:
                data = self._inflater.decompress(source, len(buffer))
            except zlib.error:
                break
            if data:
                buffer[: len(data)] = data
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


def _fragments(elements: _Elements) -> tuple[int, bool]:
    """The bytes in an encapsulated Pixel Data's fragments (the first item, the offset table, left out), and whether
    every item is whole and the sequence delimiter follows them."""
    present, first = 0, True
    while (element := elements.next()) is not None:
        tag, _, length = element
        if tag == _SEQUENCE_END:
            return present, True
        if tag != _ITEM or length == _UNDEFINED:
            break
        passed = _skip(elements.stream, length)
        present += 0 if first else passed
        first = False
        if passed < length:
            break
    return present, False


def _is_part10(head: bytes) -> bool:
    """Whether a file's first bytes open a Part 10 file: 128 bytes of preamble, then "DICM"."""
    return head[_PREAMBLE : _PREAMBLE + len(_MAGIC)] == _MAGIC


def is_part10(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file by its first bytes; a file that cannot be opened is not."""
    try:
        with path.open("rb") as handle:
            return _is_part10(handle.read(_PREAMBLE + len(_MAGIC)))
    except OSError:
        return False


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
        syntax = _EXPLICIT_LITTLE if vr.isalpha() and vr.isupper() else _IMPLICIT_LITTLE
    return syntax


def _image_values(values: dict[str, bytes], big: bool) -> dict[str, int]:
    """The image tags' values: US numbers, and Number of Frames as text (1 when absent or not a whole number)."""
    order = "big" if big else "little"
    numbers = {key: int.from_bytes(value[:2], order) for key, value in values.items() if key != "frames"}
    frames = values.get("frames", b"1").strip(b"\0 ")
    return (
        {"samples": 1, "rows": 0, "columns": 0, "bits": 0}
        | numbers
        | {"frames": int(frames) if frames.isdigit() else 1}
    )


def pixel_bytes(path: Path) -> PixelBytes:
    """The image ``path``'s header declares and the bytes of pixel data the file holds (none found: 0)."""
    with path.open("rb") as handle:
        syntax = _transfer_syntax(handle)
        stream = io.BufferedReader(_Inflating(handle)) if syntax == _DEFLATED else handle
        elements = _Elements(stream, explicit=syntax != _IMPLICIT_LITTLE, big=syntax == _EXPLICIT_BIG)
        values: dict[str, bytes] = {}
        present, complete = 0, False
        while (element := elements.next()) is not None:
            tag, vr, length = element
            if tag in _PIXEL_DATA and length == _UNDEFINED:
                present, complete = _fragments(elements)
                break
            if tag in _PIXEL_DATA:
                present = _skip(stream, length)
                complete = present == length
                break
            if tag in _IMAGE_TAGS and length <= 16:
                values[_IMAGE_TAGS[tag]] = stream.read(length)
            elif length == _UNDEFINED:
                _skip_undefined(elements.inner(vr))
            else:
                _skip(stream, length)
    return PixelBytes(**_image_values(values, elements.big), present=present, complete=complete, syntax=syntax)
