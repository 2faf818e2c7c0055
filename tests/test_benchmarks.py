"""The benchmark scripts that restate a lesson's recipe still restate it exactly.

`benchmarks/l15_common.py`, `l15_recall.py`, `l15_scaling.py` and `l13_lever.py` run a lesson's own
loop, data and models for longer than the lesson can, and the lesson quotes their results files as
if they were its own runs. A reader sees the lesson's cells, not the scripts, so the two must not
drift apart: these tests parse the lesson's code cells and the scripts and compare the definitions
(as syntax trees, docstrings and comments left out) and the constants of the full run.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lesson(name: str) -> ast.Module:
    """The lesson's code cells as one module (full mode: `X if FAST else Y` is read as Y)."""
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    src = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return _FullMode().visit(ast.parse(src))


def _script(name: str) -> ast.Module:
    return ast.parse((ROOT / "benchmarks" / name).read_text())


class _FullMode(ast.NodeTransformer):
    def visit_IfExp(self, node):
        self.generic_visit(node)
        if isinstance(node.test, ast.Name) and node.test.id == "FAST":
            return node.orelse
        return node


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id=self.names.get(node.id, node.id), ctx=node.ctx), node)


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    assert len(found) == 1, f"expected one definition of {name}, found {len(found)}"
    return found[0]


def _assigned(tree: ast.Module, name: str) -> ast.expr:
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and len(n.targets) == 1
             and isinstance(n.targets[0], ast.Name) and n.targets[0].id == name]
    if not found:  # a tuple assignment: BLOCK, PROMPT_LEN, ANSWER_LEN = 208, 152, 56
        for n in ast.walk(tree):
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple) and isinstance(n.value, ast.Tuple):
                found += [v for t, v in zip(n.targets[0].elts, n.value.elts) if isinstance(t, ast.Name) and t.id == name]
    assert len(found) == 1, f"expected one assignment to {name}, found {len(found)}"
    return found[0]


def _value(tree: ast.Module, name: str):
    return ast.literal_eval(_assigned(tree, name))


def _body(fn: ast.FunctionDef, names: dict[str, str] | None = None, drop=lambda stmt: False) -> str:
    """The function's statements without its docstring, nested statements dropped by `drop`, names renamed."""

    class _Drop(ast.NodeTransformer):
        def generic_visit(self, node):
            super().generic_visit(node)
            for field in ("body", "orelse"):
                stmts = getattr(node, field, None)
                if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                    setattr(node, field, [s for s in stmts if not drop(s)] or [ast.Pass()])
            return node

    stmts = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body
    mod = _Rename(names or {}).visit(_Drop().visit(ast.Module(body=[ast.parse(ast.unparse(s)).body[0] for s in stmts], type_ignores=[])))
    return ast.dump(mod)


def _calls(tree: ast.Module, func: str) -> list[dict[str, str]]:
    """The keyword arguments (unparsed) of every call to `func`."""
    return [{k.arg: ast.unparse(k.value) for k in n.keywords} for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == func]


# ---- lesson 15 ------------------------------------------------------------------------------------

L15 = "15_before_and_beyond.ipynb"


def _is_on_eval(stmt) -> bool:
    return isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name) and stmt.test.id == "on_eval"


def test_l15_common_trains_with_the_lessons_loop():
    lesson, common = _lesson(L15), _script("l15_common.py")
    ours, theirs = _function(lesson, "fit"), _function(common, "fit")
    assert _body(theirs, drop=_is_on_eval) == _body(ours), "benchmarks/l15_common.py's fit no longer is lesson 15's fit"
    # the same defaults, plus the scripts' on_eval hook
    args = lambda fn: [(a.arg, ast.unparse(d)) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults)]  # noqa: E731
    assert [a for a in args(theirs) if a[0] != "on_eval"] == args(ours)


def test_l15_common_uses_the_lessons_data_and_evaluation():
    lesson, common = _lesson(L15), _script("l15_common.py")
    assert _value(common, "T") == _value(lesson, "T") == 64
    assert "split_tokens(tok.encode(text), val_fraction=0.1)" in ast.unparse(_function(common, "shakespeare"))
    assert "split_tokens(tok.encode(text), val_fraction=0.1)" in ast.unparse(lesson)
    (lesson_eval,) = [c for c in _calls(lesson, "estimate_loss") if "eval_iters" in c]
    (script_eval,) = [c for c in _calls(common, "estimate_loss") if "eval_iters" in c]
    assert lesson_eval == {"block_size": "T", "batch_size": "32", "eval_iters": "10"}
    assert script_eval["block_size"] == "T" and script_eval["batch_size"] == "32"
    assert script_eval["eval_iters"] == "4 if fast else 10"  # the full run's 10, as the lesson's full mode
    assert _function(common, "batch_fn").args.defaults[0].value == 16  # the lesson's shakespeare_batch size
    assert ast.literal_eval(_function(lesson, "shakespeare_batch").args.defaults[0]) == 16


def test_l15_scaling_sweeps_the_lessons_sizes_and_budgets():
    lesson, script = _lesson(L15), _script("l15_scaling.py")
    assert _value(script, "SIZES") == _value(lesson, "SIZES")
    assert _value(script, "BUDGET_STEPS") == _value(lesson, "BUDGET_STEPS")
    assert _value(script, "BATCH") == _value(lesson, "SWEEP_BATCH")


def test_l15_recall_trains_the_lessons_recall_task():
    lesson, script = _lesson(L15), _script("l15_recall.py")
    for fn in ("recall_batch", "recall_accuracy"):
        assert _body(_function(script, fn)) == _body(_function(lesson, fn), {"V_PROBE": "V"}), f"{fn} differs"
    assert (_value(script, "V"), _value(script, "SCORED")) == (_value(lesson, "V_PROBE"), _value(lesson, "SCORED"))
    gpt = "GPTConfig(vocab_size={v}, block_size=d + SCORED, n_layer=2, n_head=4, n_embd=64, dropout=0.0)"
    lstm = "CharLSTM({v}, 32, hidden"
    assert gpt.format(v="V_PROBE") in ast.unparse(lesson) and gpt.format(v="V") in ast.unparse(script)
    assert lstm.format(v="V_PROBE") in ast.unparse(lesson) and lstm.format(v="V") in ast.unparse(script)


# ---- lesson 13 ------------------------------------------------------------------------------------

L13 = "13_summarization.ipynb"


def test_l13_lever_builds_the_lessons_prompts_and_model():
    lesson, script = _lesson(L13), _script("l13_lever.py")
    for name in ("PROMPT_LEN", "ANSWER_LEN", "BLOCK", "EOT_TEXT"):
        lv, sv = _assigned(lesson, name), _assigned(script, name)
        assert ast.literal_eval(lv) == (ast.literal_eval(sv) if not isinstance(sv, ast.BinOp) else eval(ast.unparse(sv), {}, {
            "PROMPT_LEN": _value(script, "PROMPT_LEN"), "ANSWER_LEN": _value(script, "ANSWER_LEN")})), name
    rename = {"length": "PROMPT_LEN", "EOT": "eot"}
    for fn in ("prompt_ids", "answer_ids"):
        assert _body(_function(script, fn)) == _body(_function(lesson, fn), rename), f"{fn} differs from the lesson's"
    (lesson_cfg,), (script_cfg,) = _calls(lesson, "GPTConfig"), _calls(script, "GPTConfig")
    assert lesson_cfg == script_cfg, "the model configuration differs from the lesson's"
    assert "train_bpe('\\n'.join((p.abstract for p in train_papers)), 2048, special_tokens=[EOT_TEXT])" in ast.unparse(lesson)
    assert "train_bpe('\\n'.join((p.abstract for p in train_papers)), 2048, special_tokens=[EOT_TEXT])" in ast.unparse(script)


def test_l13_lever_pretrains_and_fine_tunes_with_the_lessons_settings():
    lesson, script = _lesson(L13), _script("l13_lever.py")
    configs = _calls(lesson, "TrainConfig")
    pre = next(c for c in configs if "min_lr" in c and c["min_lr"] == "0.0002")
    (pre_s,) = [c for c in _calls(script, "TrainConfig") if c["lr"] == "0.002"]
    for key in ("batch_size", "lr", "min_lr", "bf16"):
        assert pre[key] == pre_s[key], f"pretraining {key}: lesson {pre[key]}, script {pre_s[key]}"
    assert pre["warmup_steps"] == "PRETRAIN_STEPS // 10" and pre_s["warmup_steps"] == "steps // 10"
    assert _value(lesson, "PRETRAIN_STEPS") == 300  # the script's --pretrain default and the lever table's base row
    # fine-tuning: the lesson's finetune() with FT_LR and its default batch of 8; the script spells the values out
    ft = next(c for c in configs if c.get("min_lr") == "lr / 10")
    (ft_s,) = [c for c in _calls(script, "TrainConfig") if c["lr"] == "0.001"]
    defaults = {a.arg: ast.literal_eval(d) for a, d in zip(_function(lesson, "finetune").args.kwonlyargs,
                                                           _function(lesson, "finetune").args.kw_defaults) if d is not None}
    assert ast.literal_eval(_assigned(lesson, "FT_LR")) == ast.literal_eval(ft_s["lr"]) == 1e-3
    assert ast.literal_eval(ft_s["min_lr"]) == pytest.approx(1e-3 / 10)
    assert ft["batch_size"] == "batch_size" and defaults["batch_size"] == ast.literal_eval(ft_s["batch_size"]) == 8
    assert ft["warmup_steps"] == "steps // 10" == ft_s["warmup_steps"]
    assert _value(lesson, "FT_STEPS") == 250


# ---- lesson 12 ------------------------------------------------------------------------------------

L12 = "12_translation.ipynb"


def test_l12_compare_builds_the_lessons_data_models_and_budget():
    """Seeds 1 and 2 of lesson 12's table come from the script: the same split, tokenizer, models and recipe."""
    lesson, script = _lesson(L12), _script("l12_compare.py")
    for name in ("CHAR_PATTERN", "VOCAB", "N_EMBD", "N_HEAD", "BATCH", "GPT_STEPS"):
        assert _value(lesson, name) == _value(script, name), f"{name} differs from the lesson's"
    split = "tasks.split_translation_pairs(pairs, test_pairs=1200, dev_pairs=600, seed=0)"
    assert split in ast.unparse(lesson) and split in ast.unparse(script)
    assert _value(lesson, "n_dev") == 200 and "// 200] for i in range(200)]" in ast.unparse(script)
    assert _value(lesson, "MAX_NEW") == 48 and "max_new_tokens=48" in ast.unparse(script)
    gpt = [c for c in _calls(lesson, "GPTConfig") if c.get("n_layer") == "6"] + [c for c in _calls(script, "GPTConfig")]
    s2s = [c for c in _calls(lesson, "Seq2SeqConfig") if c.get("block_size") == "64"] + _calls(script, "Seq2SeqConfig")
    for (lc, sc), keys in ((gpt, ("block_size", "n_layer")), (s2s, ("block_size", "n_encoder_layer", "n_decoder_layer"))):
        for key in keys:
            assert lc[key] == sc[key], f"model {key}: lesson {lc[key]}, script {sc[key]}"
    (lesson_cfg,), (script_cfg,) = [[c for c in _calls(t, "TrainConfig") if c.get("min_lr") == "lr / 20"] for t in (lesson, script)]
    for key in ("batch_size", "weight_decay", "grad_clip", "bf16"):
        assert lesson_cfg[key] == script_cfg[key], f"recipe {key}: lesson {lesson_cfg[key]}, script {script_cfg[key]}"
