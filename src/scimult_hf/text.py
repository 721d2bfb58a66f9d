"""How SciMult reads a paper: ``title [SEP] abstract``."""

from collections.abc import Iterable, Mapping

from .errors import InputError

SEP = "[SEP]"


def paper_text(title: str | None, abstract: str | None = None) -> str:
    """The model input for a paper, as the original SciMult evaluation scripts build it.

    ``title [SEP] abstract`` (single spaces around the literal ``[SEP]``, which BERT tokenizers keep as
    the separator token). An empty or missing abstract gives the title alone; the original scripts
    would leave a dangling ``title [SEP] `` (one extra [SEP] token) - a deliberate difference.

    >>> paper_text("BERT", "We introduce a new language representation model.")
    'BERT [SEP] We introduce a new language representation model.'
    >>> paper_text("A title only", "")
    'A title only'
    """
    title = (title or "").strip()
    abstract = (abstract or "").strip()
    if not abstract:
        return title
    if not title:
        return abstract
    return f"{title} {SEP} {abstract}"


def label_text(name: str, description: str | None = None) -> str:
    """The text of a label: its name, or ``name [SEP] description`` when a description is given.

    >>> label_text("Virus Diseases")
    'Virus Diseases'
    >>> label_text("Virus Diseases", "Diseases caused by viruses.")
    'Virus Diseases [SEP] Diseases caused by viruses.'
    """
    name = (name or "").strip()
    description = (description or "").strip()
    return f"{name} {SEP} {description}" if description else name


def paper_texts(papers: Iterable[Mapping], abstract_field: str = "abstract") -> list[str]:
    """``paper_text`` over records with ``title`` and ``abstract`` (or ``text``, as in BEIR corpora)."""
    out = []
    for i, paper in enumerate(papers):
        if "title" not in paper and abstract_field not in paper and "text" not in paper:
            raise InputError(f"paper {i} has neither 'title' nor '{abstract_field}'/'text': {dict(paper)!r:.200}")
        abstract = paper.get(abstract_field, paper.get("text"))
        out.append(paper_text(paper.get("title"), abstract))
    return out
