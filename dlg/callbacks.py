"""`dlg.callbacks`: the public face of `dlg.runtime.callbacks` (Keras' fit callbacks:
`m.fit(x, y, callbacks=[EarlyStopping(patience=3)])`)."""

from dlg.runtime.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
)

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "History", "ModelCheckpoint",
           "ReduceLROnPlateau", "TensorBoard"]
