"""The Chinese edition (tools/zh.py): present, current, the same figures as the English, one term per concept."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import zh  # noqa: E402

# The lessons and documents translated: all of them (issue 31). A new lesson or document starts outside this set,
# with no translation file, and test_the_whole_course_is_translated below names it until its Chinese text is written.
TRANSLATED: set[str] = {
    "00_setup_and_tour",
    "01_tokens",
    "02_data_and_embeddings",
    "03_causal_self_attention",
    "04_transformer_block",
    "05_gpt_model",
    "06_pretraining",
    "07_decoding",
    "08_attention_maps",
    "09_gpt2_weights",
    "10_evaluating_generated_text",
    "11_sentiment",
    "12_translation",
    "13_summarization",
    "14_optimization",
    "15_before_and_beyond",
    "README",
    "teaching",
}


@pytest.mark.parametrize("name", sorted(zh.sources()))
def test_translation_is_present_current_and_keeps_the_figures(name):
    path = zh.sources()[name][1]
    if name not in TRANSLATED:
        assert not path.exists(), f"{path.name} exists: add {name} to TRANSLATED in tests/test_zh.py"
        return
    found = zh.problems([name])
    assert not found, "\n".join(found[:40])


# ---------------------------------------------------------------- the check catches what it must


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A one-lesson course with a README, its translations, and the real glossary."""
    nbs = tmp_path / "notebooks"
    (nbs / "zh").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · Attention\n\nThe loss falls to 1.91 after `2000` steps, see [x](https://a.b/c)."),
                nbformat.v4.new_code_cell("print(1.91)"),
                nbformat.v4.new_markdown_cell("The mask is applied **before** the softmax: $w = \\mathrm{softmax}(s)$.")]
    nb.cells[0].id, nb.cells[1].id, nb.cells[2].id = "cell-000", "cell-001", "cell-002"
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1.91\n")]
    nbformat.write(nb, nbs / "03_attention.ipynb")
    readme = tmp_path / "README.md"
    readme.write_text("# gptlab\n\nA course of 16 lessons.\n\n## Quickstart\n\nRun `make lab`.\n", encoding="utf-8")
    monkeypatch.setattr(zh, "ROOT", tmp_path)
    monkeypatch.setattr(zh, "NOTEBOOKS", nbs)
    monkeypatch.setattr(zh, "ZH", nbs / "zh")
    monkeypatch.setattr(zh, "DOCS", {"README": readme})
    good = {
        "03_attention": {"cell-000": "# 03 · 注意力\n\n训练 `2000` 步后损失降到 1.91，见 [x](https://a.b/c)。",
                         "cell-002": "掩码要在 softmax **之前**施加：$w = \\mathrm{softmax}(s)$。"},
        "README": {"gptlab": "# gptlab\n\n一门 16 课的课程。", "quickstart": "## 快速开始\n\n运行 `make lab`。"},
    }

    def write(name, texts):
        src, path, units = zh.sources()[name]
        kind = "cell" if src.suffix == ".ipynb" else "block"
        path.write_text("\n\n".join(f"<!-- zh {kind}={k} en={zh.en_hash(units.get(k, k))} -->\n{t}" for k, t in texts.items()) + "\n",
                        encoding="utf-8")
        return path

    for name, texts in good.items():
        write(name, texts)
    return tmp_path, write, good


def test_a_faithful_translation_passes(course):
    assert zh.problems() == []


def test_an_english_change_makes_the_translation_stale_naming_lesson_and_cell(course):
    root, _, _ = course
    p = root / "notebooks" / "03_attention.ipynb"
    nb = nbformat.read(p, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("before", "right before")
    nbformat.write(nb, p)
    found = zh.problems()
    assert len(found) == 1 and "03_attention.ipynb cell cell-002: stale" in found[0]


def test_a_changed_number_code_span_formula_or_link_is_reported(course):
    _, write, good = course
    for bad, kind in (("1.9", "number"), ("`200`", "code"), ("$w$", "formula"), ("(https://a.b/d)", "link")):
        texts = dict(good["03_attention"])
        old = {"number": "1.91", "code": "`2000`", "formula": "$w = \\mathrm{softmax}(s)$", "link": "(https://a.b/c)"}[kind]
        key = "cell-002" if kind == "formula" else "cell-000"
        texts[key] = texts[key].replace(old, bad)
        write("03_attention", texts)
        found = zh.problems()
        assert any(f"{kind} missing" in f and key in f for f in found), (kind, found)


def test_missing_untranslated_orphan_and_banned_terms_are_reported(course):
    root, write, good = course
    texts = dict(good["03_attention"])
    del texts["cell-002"]
    texts["cell-009"] = "多余的一段。"
    texts["cell-000"] = texts["cell-000"].replace("损失", "混乱度")
    path = write("03_attention", texts)
    found = "\n".join(zh.problems())
    assert "cell cell-002: no translation" in found
    assert "cell cell-009 (line" in found and "no longer in" in found
    assert "'混乱度'" in found and "'困惑度'" in found
    path.write_text(path.read_text(encoding="utf-8").replace("训练", "<!-- EN:\nextra\n-->训练"), encoding="utf-8")
    assert "still there" in "\n".join(zh.problems())
    (root / "README.md").unlink()
    (root / "notebooks" / "zh" / "README.md").rename(root / "README.zh")
    (root / "README.md").write_text("# gptlab\n", encoding="utf-8")
    assert any("README.md: missing" in f for f in zh.problems())


def test_malformed_files_are_refused_with_the_line(course):
    root, _, _ = course
    path = root / "notebooks" / "zh" / "03_attention.md"
    text = path.read_text(encoding="utf-8")
    path.write_text("前言\n" + text, encoding="utf-8")
    assert any("text before the first" in f for f in zh.problems())
    first = text.split("\n", 1)[0]
    path.write_text(text + "\n" + first + "\n再一次\n", encoding="utf-8")
    assert any("a second translation of cell-000" in f for f in zh.problems())


def test_the_build_keeps_code_and_outputs_and_swaps_only_the_prose(course):
    root, _, good = course
    written = zh.build(root / "build" / "zh")
    nb = nbformat.read(root / "build" / "zh" / "03_attention.ipynb", as_version=4)
    en = nbformat.read(root / "notebooks" / "03_attention.ipynb", as_version=4)
    assert [c.source for c in nb.cells if c.cell_type == "markdown"] == list(good["03_attention"].values())
    assert [(c.source, c.outputs) for c in nb.cells if c.cell_type == "code"] == \
        [(c.source, c.outputs) for c in en.cells if c.cell_type == "code"]
    assert (root / "build" / "zh" / "README.md").read_text(encoding="utf-8").startswith("# gptlab\n\n一门 16 课")
    assert len(written) == 2


def test_todo_lists_only_what_needs_translating(course):
    root, write, good = course
    texts = dict(good["03_attention"])
    del texts["cell-002"]
    write("03_attention", texts)
    out = zh.todo("03")
    assert "cell=cell-002" in out and "cell=cell-000" not in out and "<!-- EN:" in out


def test_the_real_course_units_have_ids_and_the_glossary_parses():
    for src, _, units in zh.sources().values():
        assert units, f"{src.name} has no translatable text"
    terms, banned = zh.glossary()
    assert terms["token"] == "词元" and terms["perplexity"] == "困惑度" and banned["令牌"] == "词元"
    assert not set(banned) & set(terms.values()), "a glossary term is also listed as an alternative not to use"


def test_the_whole_course_is_translated():
    """Every lesson, the README and the instructor guide have Chinese text (a new one fails here, by name)."""
    missing = sorted(set(zh.sources()) - TRANSLATED)
    assert not missing, f"no Chinese text yet for {missing}: python tools/zh.py todo NN, then add it to TRANSLATED"
