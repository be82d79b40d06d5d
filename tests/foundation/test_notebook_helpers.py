from unittest import mock

import pandas as pd

from propflow_ops import notebook


def test_show_masks_text_columns_of_every_string_dtype():
    shown: list[object] = []
    frame = pd.DataFrame(
        {
            "arrow_str": pd.array(["sent to +919999900001"], dtype="str"),
            "objects": pd.Series(["postgresql://u:hunter2@db/x"], dtype=object),
        }
    )
    with mock.patch.object(notebook, "display", shown.append):
        notebook.show(frame)
    out = shown[0]
    assert isinstance(out, pd.DataFrame)
    assert out["arrow_str"][0] == "sent to +91********01"
    assert out["objects"][0] == "postgresql://u:***@db/x"


def test_show_keeps_long_cells_whole_and_masked():
    message = (
        "(service propflow-api) has reached a steady state. (deployment ecs-svc/1234567890) "
        "stopped task arn:aws:ecs:task/abc: Essential container in task exited; OutOfMemoryError: "
        "Container killed due to memory usage; call +919999900001"
    )
    frame = pd.DataFrame({"at": [pd.Timestamp("2026-11-27T03:00Z")], "message": [message]})
    rendered: list[str] = []

    def capture(obj: object) -> None:  # render now, under the options show() set, as IPython does
        rendered.append(obj._repr_html_())  # type: ignore[attr-defined]
        rendered.append(repr(obj))

    with mock.patch.object(notebook, "display", capture):
        notebook.show(frame)
    html, text = rendered
    for out in (html, text):
        assert "has reached a steady st..." not in out and "..." not in out
        assert "Container killed due to memory usage; call +91********01" in out
        assert "+919999900001" not in out
