import nbformat

from propflow_ops.report_html import render


def test_outputs_render_and_inputs_stay_hidden():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Section\n\n| a | b |\n|---|---|\n| 1 | 2 |"),
        nbformat.v4.new_code_cell(
            "secret_input_code()",
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text="<hello>"),
                nbformat.v4.new_output(
                    "display_data", data={"text/html": "<b>bold</b>", "text/plain": "bold"}
                ),
                nbformat.v4.new_output(
                    "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
                ),
                nbformat.v4.new_output(
                    "error",
                    ename="RuntimeError",
                    evalue="boom",
                    traceback=["\x1b[0;31mRuntimeError\x1b[0m: boom"],
                ),
            ],
        ),
    ]
    page = render(nb, "<h2>HEAD</h2>", "t")
    assert page.index("HEAD") < page.index("Section")
    assert "<table>" in page and "&lt;hello&gt;" in page and "<b>bold</b>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in page
    assert "RuntimeError: boom" in page and "\x1b" not in page
    assert "secret_input_code" not in page
