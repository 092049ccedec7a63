"""Small real PDFs for the file tests: `pages` pages, each showing one line of text."""

from __future__ import annotations

import base64


def pdf(pages: int = 1, text: str = "Quarterly numbers") -> bytes:
    """A minimal well-formed PDF with `pages` pages, each drawing `text` with a Tj operator."""
    kids = " ".join(f"{3 + 2 * n} 0 R" for n in range(pages))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>"]
    for n in range(pages):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents {4 + 2 * n} 0 R >>")
        stream = f"BT /F1 12 Tf 20 100 Td ({text} {n + 1}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    body = b"%PDF-1.4\n"
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n{content}\nendobj\n".encode()
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    body += f"trailer << /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return body


def pdf_part(pages: int = 1, filename: str = "report.pdf", text: str = "Quarterly numbers") -> dict:
    data = base64.b64encode(pdf(pages, text)).decode()
    return {"type": "file", "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"}}


def text_part(text: str, filename: str = "notes.md", media_type: str = "text/markdown") -> dict:
    data = base64.b64encode(text.encode()).decode()
    return {"type": "file", "file": {"filename": filename, "file_data": f"data:{media_type};base64,{data}"}}
