"""Python client and command line for the RepLens REST API.

>>> from replens_client import Client
>>> client = Client("http://127.0.0.1:8000", token)
>>> ckpt = client.upload_checkpoint("model.pt", "lab", seed_group="mlp", step=1000)
>>> data = client.upload_dataset("digits.npz", "lab")
>>> run = client.wait(client.extract(ckpt, data)["id"])
"""

__version__ = "0.1.0"

from replens_client.client import (  # noqa: E402
    Client,
    ConnectionFailed,
    ReplensError,
    RunFailed,
    Uploaded,
    UploadFailed,
    WaitTimeout,
)

__all__ = [
    "Client",
    "ConnectionFailed",
    "ReplensError",
    "RunFailed",
    "UploadFailed",
    "Uploaded",
    "WaitTimeout",
    "__version__",
]
