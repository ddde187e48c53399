"""What a library's error text becomes before a person reads it (analysis.errors.plain)."""

from analysis.errors import InputError, plain, scrubbed

TORCHSCRIPT = """The following operation failed in the TorchScript interpreter.
Traceback of TorchScript, serialized code (most recent call last):
  File "code/__torch__/m.py", line 12, in forward
    _0 = torch.conv2d(x)
         ~~~~~~~~~~~~ <--- HERE
Traceback of TorchScript, original code (most recent call last):
  File "/tmp/tmpab12cd/model.py", line 8, in forward
RuntimeError: expected 4D input, got [256, 16]
"""


def test_a_traceback_gives_its_meaningful_line_without_the_class_name():
    assert plain(TORCHSCRIPT) == "expected 4D input, got [256, 16]"


def test_server_paths_object_addresses_and_colour_codes_are_removed():
    assert plain("cannot identify image file <_io.BytesIO object at 0x7f3a2b10>") == (
        "cannot identify image file the file"
    )
    assert plain("\x1b[31mbad\x1b[0m magic in /tmp/tmpx8d9/m.parquet") == "bad magic in the file"
    assert plain("no config in /tmp/replens-hf-k2j3/m/config.json.") == ("no config in the file")


def test_advice_for_programmers_is_dropped_going_back_a_line_when_nothing_is_left():
    torch_text = (
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` "
        "will likely succeed.\nCheck the documentation of torch.load to learn more about types "
        "accepted by default with weights_only https://pytorch.org/docs/stable/torch.load.html."
    )
    assert plain(torch_text) == "Weights only load failed."
    assert plain("Object arrays cannot be loaded when allow_pickle=False") == ""
    assert plain("x" * 500).endswith("…") and len(plain("x" * 500)) == 300


def test_caused_by_keeps_the_meaningful_line_and_the_scrubbed_text_as_details():
    err = InputError.caused_by("the model failed", RuntimeError(TORCHSCRIPT))
    assert str(err) == "the model failed: expected 4D input, got [256, 16]"
    assert "Traceback of TorchScript" in err.details
    assert "/tmp/" not in err.details and err.details == scrubbed(TORCHSCRIPT)
    assert str(
        InputError.caused_by("not a readable .npy array", ValueError("allow_pickle=False"))
    ) == ("not a readable .npy array")
