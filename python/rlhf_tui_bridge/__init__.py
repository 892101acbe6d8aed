"""Watch and steer a Hugging Face or TRL trainer from the rlhf-tui workbench:

    from rlhf_tui_bridge import WorkbenchCallback
    trainer.add_callback(WorkbenchCallback(trainer, run="my-run"))
    # then, in a terminal: rlhf-tui attach --run my-run
"""

from .callback import WorkbenchCallback
from .frames import PROTOCOL_VERSION

__all__ = ["WorkbenchCallback", "PROTOCOL_VERSION"]
