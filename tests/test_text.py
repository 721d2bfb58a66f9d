from scimult_hf import paper_text, paper_texts


def test_title_sep_abstract_as_original():
    assert paper_text("A title", "An abstract.") == "A title [SEP] An abstract."


def test_empty_abstract_gives_title_only():
    assert paper_text("A title", "") == "A title"
    assert paper_text("A title", None) == "A title"
    assert paper_text("  A title ", "   ") == "A title"


def test_records_use_abstract_or_beir_text():
    assert paper_texts([{"title": "T", "abstract": "A"}, {"title": "U", "text": "B"}, {"title": "V"}]) == [
        "T [SEP] A", "U [SEP] B", "V"]


def test_sep_is_the_separator_token(tokenizer):
    ids = tokenizer(paper_text("graph neural networks", "we study message passing"))["input_ids"]
    assert ids.count(tokenizer.sep_token_id) == 2  # the literal [SEP] and the final one
