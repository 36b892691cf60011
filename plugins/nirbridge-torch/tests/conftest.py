import os

import torch

os.environ.setdefault("NIRBRIDGE_DISABLE_PLUGINS", "1")
torch.set_num_threads(1)
