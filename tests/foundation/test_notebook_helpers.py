from unittest import mock

import pandas as pd

from propflow_ops import notebook


def test_show_masks_text_columns_of_every_string_dtype():
    shown: list[object] = []
    frame = pd.DataFrame({
        "arrow_str": pd.array(["sent to +919999900001"], dtype="str"),
        "objects": pd.Series(["postgresql://u:hunter2@db/x"], dtype=object),
    })
    with mock.patch.object(notebook, "display", shown.append):
        notebook.show(frame)
    out = shown[0]
    assert isinstance(out, pd.DataFrame)
    assert out["arrow_str"][0] == "sent to +91********01"
    assert out["objects"][0] == "postgresql://u:***@db/x"

