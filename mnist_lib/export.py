"""The report's export: the executed report notebook to one self-contained HTML file and a PDF
(nbconvert; xelatex through pandoc), with every figure's caption as its alt text."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from mnist_lib.errors import MnistLibError
from mnist_lib.files import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "templates"  # the PDF's LaTeX template


def check_report_tools() -> None:
    """The PDF needs xelatex and pandoc; say how to get them instead of failing later."""
    if missing := [tool for tool in ("xelatex", "pandoc") if shutil.which(tool) is None]:
        raise MnistLibError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing (needed for "
                            f"the PDF report): run `make system-deps` (scripts/system-deps.sh)")


def _report_notebook(path: Path):
    """The executed report notebook for export: without stderr streams (warnings, progress bars)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nb.metadata["title"] = nb.metadata.get("title") or "MNIST-Classification"
    # The PDF's title page: the course and assignment, then what the report does (one line each), and the date.
    nb.metadata["authors"] = [{"name": "Artificial Neural Networks and Deep Learning, assignment 2"},
                              {"name": "the course writeup reproduced and tested claim by claim"}]
    nb.metadata["date"] = time.strftime("%d %B %Y")
    return nb


def _set_alt_texts(html: str, nb) -> str:
    """nbconvert's lab template writes no alt text for output images; give each its caption (which
    paper.Numbering puts in the image output's metadata)."""
    from bs4 import BeautifulSoup

    alts = [(o.get("metadata", {}).get("image/png") or {}).get("alt")
            for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})]
    soup = BeautifulSoup(html, features="html.parser")
    for img, alt in zip(soup.select('.jp-OutputArea-output img[src^="data:image/png"]'), alts):
        if alt:
            img["alt"] = alt
    return str(soup)


def export_report(executed: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """report.html (self-contained: images embedded, code hidden) and report.pdf (xelatex: check_report_tools first)."""
    from nbconvert import HTMLExporter, PDFExporter
    from nbconvert.exporters.pdf import LatexFailed
    from traitlets.config import Config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = _report_notebook(Path(executed))
    hidden = dict(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    config = Config(HTMLExporter=dict(hidden, embed_images=True), PDFExporter=hidden)
    html, _ = HTMLExporter(config=config, template_name="lab").from_notebook_node(nb)
    # Self-contained and offline: drop the template's CDN scripts (require.js for widgets, MathJax
    # for $...$ math); the report uses neither (its symbols are plain Unicode).
    html = re.sub(r'<script src="https?://[^"]*"[^>]*>\s*</script>', "", html)
    html = _set_alt_texts(html, nb)
    html_path = out_dir / "report.html"
    write_atomic(html_path, html)
    nb.cells = [c for c in nb.cells if "html-only" not in c.metadata.get("tags", [])]  # the PDF has a title page
    try:
        pdf, _ = PDFExporter(config=config, template_file=str(TEMPLATES / "mnist_report.tex.j2")).from_notebook_node(nb)
    except LatexFailed as exc:
        lines = [line for line in str(exc.output).splitlines() if line.startswith("!")]
        raise MnistLibError(f"xelatex failed on the report: {lines[0] if lines else 'see the LaTeX log'} "
                            f"(the HTML report is in {html_path})") from None
    except OSError as exc:
        raise MnistLibError(f"the PDF export failed ({exc}): run `make system-deps` (scripts/system-deps.sh)") from None
    write_atomic(out_dir / "report.pdf", pdf)
    return html_path, out_dir / "report.pdf"
