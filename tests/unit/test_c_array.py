"""export.c_array's C++ source (edgekit.run.c_array.c_sources): compiled with the system C compiler,
the array holds the model's bytes, aligned, with the length and arena constants of the header."""

from __future__ import annotations

import shutil

import pytest

from edgekit.run.c_array import HEADER, SOURCE, c_sources
from tests.helpers import compiled_c_array

pytestmark = pytest.mark.skipif(not (shutil.which("cc") and shutil.which("objcopy") and shutil.which("nm")),
                                reason="needs cc, objcopy and nm")


def test_the_array_compiles_with_cc_and_holds_the_model_bytes(tmp_path):
    model = bytes(range(256)) * 3 + b"TFL3 tail"  # not a multiple of the 12 bytes a line
    header, source = c_sources(model, 16_672, "model.tflite")
    (tmp_path / HEADER).write_text(header)
    (tmp_path / SOURCE).write_text(source)

    assert compiled_c_array(tmp_path) == model
    assert f"g_model_data_len = {len(model)};" in header and "kTensorArenaSize = 16672;" in header
    assert "alignas(16) const unsigned char g_model_data[]" in source
