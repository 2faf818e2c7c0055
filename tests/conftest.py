"""Shared test fixtures: one thread, the Romeo corpus and tokenizer, a tiny model, a trained tiny checkpoint.

Plain helpers and constants (the text, `run_cfg`, `snapshot`, `rehash`, ...) are in tests/_tiny.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _tiny import MODEL_CFG, TEXT, TOK, TRAIN, VAL, fresh_model, run_cfg

from gptlab import GPT, GPTConfig
from gptlab import checkpoint as C
from gptlab import training as T
from gptlab.tokenizers import CharTokenizer


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine thread hand-offs dominate."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def romeo_text() -> str:
    """A few lines of Romeo and Juliet, repeated: enough text for a character model to train on for a few steps."""
    return TEXT


@pytest.fixture(scope="session")
def romeo_tok() -> CharTokenizer:
    return TOK


@pytest.fixture()
def romeo_model() -> GPT:
    """The `tiny` preset over the Romeo vocabulary, seeded (a fresh one per test: tests may train it)."""
    assert fresh_model().config == MODEL_CFG
    return fresh_model()


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A resumable 4-step checkpoint of the tiny model on the Romeo text, trained once per session: read it only
    (`ck` gives each test its own copy to damage)."""
    path = tmp_path_factory.mktemp("trained") / "ck"
    T.train(fresh_model(), TRAIN, VAL, run_cfg(path), tokenizer=TOK)
    return path


@pytest.fixture()
def ck(trained, tmp_path) -> Path:
    """A fresh copy of the trained 4-step checkpoint, to damage."""
    return Path(shutil.copytree(trained, tmp_path / "ck"))


@pytest.fixture(scope="session")
def model_tok(trained):
    """The trained checkpoint's model and tokenizer, loaded once."""
    model, tok, _ = C.load_checkpoint(trained, device="cpu")
    return model, tok


@pytest.fixture()
def hf_folder(tmp_path) -> Path:
    """A tiny GPT exported in Hugging Face's GPT-2 layout (config.json + model.safetensors)."""
    from gptlab.pretrained import export_hf_gpt2

    return export_hf_gpt2(GPT(GPTConfig.from_preset("tiny", vocab_size=50)), tmp_path / "hf")


# ---------------------------------------------------------------- markers (registered in pyproject.toml)
# One table instead of decorators spread over files that many people edit: a whole file ("test_x.py") or one
# test function ("test_x.py::test_name", every parametrization). `make test` runs everything; `make test-quick`
# leaves out slow, browser, docs and subprocess tests; `make test-numerics` (CI) reruns the numerics tests with
# ATEN_CPU_CAPABILITY=default. An entry that names a test that no longer exists is an error, so a rename cannot
# silently move a test out of (or into) the quick suite.
MARKERS: dict[str, tuple[str, ...]] = {
    # slow, heavy, or outside Python
    "test_lab.py": ("slow", "subprocess"),  # starts a JupyterLab server
    "test_course_site.py": ("slow", "docs", "browser", "subprocess"),  # builds the site and the decks, drives Chromium
    "test_viz_browser.py": ("slow", "browser"),
    "test_distributed.py": ("slow", "subprocess"),  # torchrun, two processes
    "test_fuzz_loaders.py": ("slow", "subprocess"),  # a subprocess under a 6 GiB address-space limit
    "test_first_hour.py": ("subprocess",),  # make -n, gptlab --help
    "test_training.py::test_resume_after_kill_9_in_a_fresh_process_equals_uninterrupted": ("slow", "subprocess"),
    "test_checkpoint.py::test_a_second_training_into_the_same_folder_is_refused_at_once": ("slow", "subprocess"),
    "test_checkpoint.py::test_readers_during_saves_never_see_corruption": ("slow", "subprocess"),
    "test_cli.py::test_help_names_every_command": ("slow", "subprocess"),
    "test_cli.py::test_generate_streams_in_a_subprocess": ("slow", "subprocess"),
    "test_cli.py::test_damaged_or_mismatched_checkpoints": ("slow", "subprocess"),
    "test_cli.py::test_a_closed_pipe_is_not_an_error": ("slow", "subprocess"),
    "test_teaching_kit.py::test_kit_cell_does_nothing_where_gptlab_is_installed": ("subprocess",),
    "test_teaching_kit.py::test_kit_cell_on_a_fresh_kernel_installs_what_the_lesson_needs_and_fetches_its_data": (
        "slow",
        "subprocess",
    ),
    "test_teaching_kit.py::test_kit_cell_on_colab_with_gptlab_already_installed_sets_folders_and_fetches_only": (
        "subprocess",
    ),
    "test_teaching_kit.py::test_a_lesson_run_by_tools_nb_stays_up_to_date": ("slow", "subprocess"),
    "test_teaching_kit.py::test_nb_clean_keeps_slide_types_and_tags": ("slow", "subprocess"),
    "test_teaching_kit.py::test_a_foreign_notebook_s_html_and_javascript_do_not_run_in_its_deck": ("docs",),  # reveal.js
    "test_teaching_kit.py::test_a_course_lesson_s_html_passes_through": ("docs",),
    # slow: a few seconds or more on 2 cores (measured with --durations; most train a model for tens of steps)
    "test_checkpoint.py::test_optimizer_state_is_checked_against_the_parameters_before_adamw_sees_it": ("slow",),
    "test_checkpoint.py::test_a_fitting_optimizer_state_still_resumes": ("slow",),
    "test_cli.py::test_bpe_tokenizer": ("slow",),
    "test_cli.py::test_resume_continues_a_run": ("slow",),
    "test_cli.py::test_train_info_generate": ("slow",),
    "test_cli.py::test_bad_generate_inputs": ("slow",),  # trains the module's checkpoint through the CLI
    "test_exercises.py::test_student_edition_has_stubs_that_fail_in_one_line_and_solutions_that_pass": ("slow",),
    "test_finetune.py::test_early_stopping_stops_after_patience_evaluations": ("slow",),
    "test_finetune.py::test_frozen_parameters_do_not_move": ("slow",),
    "test_finetune.py::test_resume_refuses_a_differently_frozen_model_and_a_damaged_file": ("slow",),
    "test_finetune.py::test_resume_equals_uninterrupted": ("slow",),
    "test_finetune.py::test_training_learns_and_keeps_the_best_weights": ("slow",),
    "test_first_hour.py::test_readme_cli_commands_work_as_written_after_install": ("slow",),
    "test_model.py::test_generate_with_cache_matches_without": ("slow", "numerics"),
    "test_model.py::test_every_switch_kv_cache_equals_uncached": ("slow", "numerics"),
    "test_training.py::test_muon_splits_parameters_and_trains": ("slow",),
    "test_pretrained.py::test_loaded_weights_keep_the_checkpoint_memory_order_and_still_save_train_and_cast": ("slow",),
    "test_rnn.py::test_generate": ("slow",),
    "test_scaling.py::test_recovers_exact_parameters": ("slow",),
    "test_scaling.py::test_recovers_exponents_under_noise": ("slow",),
    "test_seq2seq.py::test_decoder_is_causal_and_encoder_bidirectional": ("slow",),
    "test_shards.py::test_cli_data_prepare_then_train_on_shards": ("slow",),
    "test_shards.py::test_split_matches_split_tokens_and_training_on_shards_matches_memory": ("slow",),
    "test_tasks_sst2.py": ("slow",),  # reads the SST-2 files once per module
    "test_tokenizers.py::test_gpt2_equals_tiktoken": ("slow",),
    "test_training.py::test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint": ("slow",),
    "test_training.py::test_bad_checkpoint_folder_and_json": ("slow",),
    "test_training.py::test_bf16_flag_switches_autocast_on": ("slow",),
    "test_training.py::test_callback_cannot_change_the_run": ("slow",),
    "test_training.py::test_checkpoint_round_trip": ("slow",),
    "test_training.py::test_course_model_is_loaded_not_retrained": ("slow",),
    "test_training.py::test_damaged_checkpoint_files_give_clear_errors": ("slow",),
    "test_training.py::test_resume_in_process_equals_uninterrupted": ("slow",),
    "test_training.py::test_resume_refuses_a_different_model_or_tokenizer": ("slow",),
    "test_training.py::test_saves_are_atomic_and_a_half_finished_save_is_harmless": ("slow",),
    "test_training.py::test_tokens_per_second_is_tokens_over_busy_time": ("slow",),
    "test_training.py::test_train_learns_and_records_history": ("slow",),
    "test_training.py::test_train_state_is_never_unpickled_beyond_weights_only": ("slow",),
    "test_translation.py::test_training_lowers_the_loss_for_both_systems": ("slow",),
    "test_viz.py::test_cli_attention_long_text_says_which_window_it_shows": ("slow",),
    "test_viz.py::test_cli_attention_png_suffix_picks_the_format_or_is_refused": ("slow",),
    "test_viz.py::test_cli_attention_writes_html_and_figures": ("slow",),
    "test_viz.py::test_every_plot_returns_a_figure_and_exports_png_and_svg": ("slow",),
    "test_viz.py::test_explorer_heatmap_is_drawn_at_the_size_it_is_shown": ("slow",),
    "test_viz.py::test_explorer_prompt_changes_errors_and_escaping": ("slow",),
    "test_viz.py::test_explorer_rejected_prompt_keeps_box_tokens_and_picture": ("slow",),
    "test_viz.py::test_head_heatmap_labels_window_and_mask": ("slow",),
    "test_viz.py::test_long_inputs_thin_the_labels": ("slow",),
    "test_viz.py::test_save_figure_suffix_formats_and_dpi": ("slow",),
    "test_viz.py::test_tick_labels_never_shrink_below_a_readable_size": ("slow",),
    # numerics: float results compared across code paths (cache/no cache, flash/explicit, batched/alone, ours/HF's)
    # or with recorded values; they must hold with any CPU kernels, so CI runs them twice.
    "test_model.py::test_every_switch_is_causal": ("numerics",),
    "test_model.py::test_rotary_is_relative": ("numerics",),
    "test_model.py::test_default_state_dict_and_init_unchanged": ("numerics",),
    "test_model.py::test_default_logits_equal_gpt2_reference": ("numerics",),
    "test_attention.py::test_capture_leaves_outputs_bit_identical": ("numerics",),
    "test_attention.py::test_flash_and_explicit_paths_capture_the_same_weights": ("numerics",),
    "test_attention.py::test_induction_scores_are_deterministic_and_equal_a_hand_computed_mean": ("slow", "numerics"),
    "test_model.py::test_capture_keeps_outputs_identical_and_weights_causal": ("numerics",),
    "test_model.py::test_flash_and_explicit_attention_agree": ("numerics",),
    "test_model.py::test_kv_cache_matches_full_forward_in_any_chunking": ("slow", "numerics"),
    "test_model.py::test_kv_cache_reorder_and_overflow": ("numerics",),
    "test_model.py::test_last_only_gives_the_last_positions_logits": ("numerics",),
    "test_model.py::test_same_seed_same_numbers": ("numerics",),
    "test_model.py::test_weights_are_tied_and_initialised_like_gpt2": ("numerics",),
    "test_finetune.py::test_hidden_states_match_the_language_model": ("numerics",),
    "test_finetune.py::test_padding_never_changes_a_prediction": ("slow", "numerics"),
    "test_finetune.py::test_without_lengths_the_last_position_is_read": ("numerics",),
    "test_generation.py::test_beam_search_cache_reorder_matches_uncached": ("numerics",),
    "test_generation.py::test_beam_search_one_beam_is_greedy": ("numerics",),
    "test_generation.py::test_cached_equals_uncached_past_the_block_and_long_prompt": ("numerics",),
    "test_generation.py::test_cached_equals_uncached_within_the_block": ("numerics",),
    "test_generation.py::test_greedy_matches_a_hand_loop_and_batch_rows_are_independent": ("numerics",),
    "test_generation.py::test_temperature_to_zero_equals_greedy": ("numerics",),
    "test_generation.py::test_generate_samples_from_the_filtered_softmax_at_temperature_t": ("numerics",),
    "test_lora.py::test_merge_gives_the_same_outputs_with_plain_linears": ("numerics",),
    "test_metrics.py::test_perplexity_of_short_text_is_the_plain_full_context_loss": ("numerics",),
    "test_metrics.py::test_perplexity_long_text_matches_hand_loops": ("numerics",),
    "test_metrics.py::test_bits_per_char_is_log2_perplexity_for_a_char_model_and_counts_characters_otherwise": (
        "numerics",
    ),
    "test_no_repeat.py::test_sampling_never_repeats_and_cache_agrees": ("numerics",),
    "test_pretrained.py::test_gptlab_generate_matches_transformers": ("slow", "numerics"),
    "test_pretrained.py::test_greedy_generation_matches_transformers": ("slow", "numerics"),
    "test_pretrained.py::test_original_layout_without_prefix_with_mask_buffers": ("numerics",),
    "test_pretrained.py::test_sharded_folder": ("numerics",),
    "test_pretrained.py::test_export_round_trip": ("numerics",),
    "test_rnn.py::test_causal": ("numerics",),
    "test_rnn.py::test_state_carries_the_prefix": ("numerics",),
    "test_seq2seq.py::test_decoding_through_generation_cached_equals_uncached": ("slow", "numerics"),
    "test_seq2seq.py::test_flash_and_explicit_attention_agree": ("numerics",),
    "test_seq2seq.py::test_forward_equals_an_explicit_computation": ("slow", "numerics"),
    "test_seq2seq.py::test_padding_gets_zero_cross_attention_and_changes_nothing": ("slow", "numerics"),
    "test_training.py::test_grad_accum_averages_micro_batches": ("slow", "numerics"),
}


@pytest.hookimpl(tryfirst=True)  # before -m/-k deselect, so that `-m "not slow"` sees the marks
def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    stale = [
        k
        for k in MARKERS
        if not (here / k.split("::")[0]).exists()
        or ("::" in k and f"def {k.split('::')[1]}(" not in (here / k.split("::")[0]).read_text())
    ]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py MARKERS names tests that do not exist (renamed?): {stale}")
    for item in items:
        file = item.path.name
        for key in (file, f"{file}::{getattr(item, 'originalname', item.name)}"):
            for name in MARKERS.get(key, ()):
                item.add_marker(getattr(pytest.mark, name))
