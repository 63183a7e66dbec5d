"""Bad input to the trainers is one clear error (what was wrong and where: FILE:LINE, field,
expected vs got), never a traceback or a run that trains on the wrong thing."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

from arborist_trainer import train_reward, train_sft
from arborist_trainer.data import read_jsonl, read_reward_data, read_sft_data
from arborist_trainer.training import LoopConfig, _check_resume, run_cli
from arborist_trainer.weights import model_config, resolve_max_len
from arborist_trainer.tokenizer import BPETokenizer

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "testdata" / "trainer"
MODELS = ROOT / "tests" / "testdata" / "models"
TOK = BPETokenizer.from_file(MODELS / "decoder-fp32")
TOP = [[{"id": 1, "logprob": -0.1}]]


def lines(*texts: str, raw: bytes | None = None) -> Path:
    f = tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False)
    f.write(raw if raw is not None else "".join(t + "\n" for t in texts).encode("utf-8"))
    f.close()
    return Path(f.name)


def rows(*objs: object) -> Path:
    return lines(*(json.dumps(o) for o in objs))


def cli(main, argv: list[str]) -> tuple[int, str]:  # noqa: ANN001
    """(exit code, stderr) of a trainer's main as `python3 -m` runs it (usage errors: 2)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run_cli("trainer", lambda: main(argv))
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


class NotAnObject(unittest.TestCase):
    def test_a_line_that_is_not_a_json_object_names_file_line_and_type(self) -> None:
        for text, kind in (("[1,2]", "array"), ("5", "number"), ('"str"', "string"), ("null", "null")):
            with self.subTest(text):
                path = lines('{"input": "x", "label": 1}', text)
                with self.assertRaisesRegex(ValueError, rf"{path.name}:2: expected a JSON object, got {kind}$"):
                    read_jsonl(path)
                with self.assertRaisesRegex(ValueError, rf"{path.name}:2: expected a JSON object, got {kind}$"):
                    read_sft_data(path, need_ref=False)


class WrongTypes(unittest.TestCase):
    def test_trl_completions_must_be_an_array_of_strings(self) -> None:
        path = rows({"prompt": "q", "completions": "ab", "labels": [1, 0]})
        for head in ("sequence-classification", "lm-tokens"):
            with self.assertRaisesRegex(ValueError, r":1: 'completions' must be an array, got string \"ab\""):
                read_reward_data(path, "trl", head, TOK)
        path = rows({"prompt": "q", "completions": ["a", 3], "labels": [1, 0]})
        with self.assertRaisesRegex(ValueError, r":1: 'completions\[1\]' must be a string, got number 3"):
            read_reward_data(path, "trl", "sequence-classification", TOK)

    def test_trl_labels_must_be_an_array(self) -> None:
        path = rows({"prompt": "q", "completions": ["a"], "labels": 1})
        for head in ("sequence-classification", "token-classification"):
            with self.assertRaisesRegex(ValueError, r":1: 'labels' must be an array, got number 1"):
                read_reward_data(path, "trl", head, TOK)

    def test_paper_input_must_be_a_string(self) -> None:
        path = rows({"input": {"a": 1}, "label": 1})
        with self.assertRaisesRegex(ValueError, r":1: 'input' must be a string, got object"):
            read_reward_data(path, "paper", "sequence-classification", TOK)

    def test_sft_ids_must_be_arrays_of_integers(self) -> None:
        cases = [
            ({"prompt_ids": "123", "completion_ids": [1]}, r"'prompt_ids' must be an array, got string \"123\""),
            ({"prompt_ids": [1.7], "completion_ids": [1]},
             r"'prompt_ids\[0\]' must be an integer token id, got number 1.7"),
            ({"prompt_ids": [1], "completion_ids": [2, "abc"]},
             r"'completion_ids\[1\]' must be an integer token id, got string \"abc\""),
            ({"prompt_ids": [True], "completion_ids": [1]}, r"'prompt_ids\[0\]' must be an integer token id"),
        ]
        for row, message in cases:
            with self.subTest(message):
                with self.assertRaisesRegex(ValueError, r"\.jsonl:1: " + message):
                    read_sft_data(rows(row), need_ref=False)

    def test_ref_top_entries_must_be_arrays_of_id_logprob_objects(self) -> None:
        base = {"prompt_ids": [1], "completion_ids": [2]}
        cases = [
            ([[{"logprob": -1}]], r"'ref_top\[0\]\[0\]' has no 'id' field"),
            ([{"id": 1, "logprob": -1}],
             r"'ref_top\[0\]' must be an array of \{\"id\", \"logprob\"\} objects, got object"),
            ([[{"id": "x", "logprob": -1}]], r"'ref_top\[0\]\[0\].id' must be an integer token id, got string"),
            ([[{"id": 1, "logprob": "x"}]], r"'ref_top\[0\]\[0\].logprob' must be a finite number, got string"),
        ]
        for top, message in cases:
            with self.subTest(message):
                with self.assertRaisesRegex(ValueError, r"\.jsonl:1: " + message):
                    read_sft_data(rows(base | {"ref_top": top}))

    def test_a_non_utf8_file_names_the_line_and_a_directory_names_the_path(self) -> None:
        path = lines(raw=b'{"prompt_ids": [1], "completion_ids": [2]}\n\xff\xfe\n')
        with self.assertRaisesRegex(ValueError, rf"{path.name}:2: expected UTF-8 text, got byte 0xff"):
            read_sft_data(path, need_ref=False)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(ValueError, rf"Cannot read the data file {d}: a directory"):
                read_sft_data(Path(d), need_ref=False)


class TokenIds(unittest.TestCase):
    def test_negative_ids_are_refused_with_file_and_line(self) -> None:
        cases = [
            ({"prompt_ids": [-1], "completion_ids": [2]}, r"'prompt_ids\[0\]' must be a token id >= 0, got -1"),
            ({"prompt_ids": [1], "completion_ids": [2, -7]}, r"'completion_ids\[1\]' must be a token id >= 0, got -7"),
            ({"prompt_ids": [1], "completion_ids": [2], "ref_top": [[{"id": -3, "logprob": -1}]]},
             r"'ref_top\[0\]\[0\].id' must be a token id >= 0, got -3"),
        ]
        for row, message in cases:
            with self.subTest(message):
                with self.assertRaisesRegex(ValueError, r"\.jsonl:1: " + message):
                    read_sft_data(rows(row), need_ref=False)

    def test_ids_past_the_vocabulary_name_file_and_line(self) -> None:
        path = rows({"prompt_ids": [1], "completion_ids": [2], "ref_top": TOP},
                    {"prompt_ids": [1], "completion_ids": [2], "ref_top": [[{"id": 357, "logprob": -1}]]})
        message = r"\.jsonl:2: 'ref_top\[0\]\[0\].id' must be a token id 0..356, got 357"
        with self.assertRaisesRegex(ValueError, message):
            read_sft_data(path, vocab_size=357)

    def test_train_sft_refuses_a_negative_id_before_training(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            path = rows({"prompt_ids": [1], "completion_ids": [-2]})
            code, err = cli(train_sft.main, ["--data", str(path), "--init", str(MODELS / "decoder-fp32"), "--beta",
                                             "0", "--out", out, "--steps", "1", "--threads", "1"])
        self.assertEqual(code, 1)
        self.assertRegex(err, r"^trainer: error: .*\.jsonl:1: 'completion_ids\[0\]' must be a token id 0..\d+, "
                              r"got -2\n$")


class NoSteps(unittest.TestCase):
    def test_trl_data_of_empty_solutions_is_no_examples(self) -> None:
        path = rows({"prompt": "q", "completions": [], "labels": []}, {"prompt": "r", "completions": [], "labels": []})
        for head in ("sequence-classification", "token-classification", "lm-tokens"):
            with self.subTest(head):
                with self.assertRaisesRegex(ValueError, rf"no examples \(every record of {path} has no steps\)"):
                    read_reward_data(path, "trl", head, TOK)

    def test_empty_solutions_beside_others_are_skipped(self) -> None:
        path = rows({"prompt": "q", "completions": [], "labels": []},
                    {"prompt": "r", "completions": ["a"], "labels": [1]})
        self.assertEqual(len(read_reward_data(path, "trl", "lm-tokens", TOK)), 1)
        self.assertEqual(len(read_reward_data(path, "trl", "sequence-classification", TOK)), 1)


def checkpoint(args: dict) -> dict:
    return {"version": 1, "loop": {}, "args": args}


CFG = LoopConfig(out=Path("/tmp/x"), steps=2, batch=1, lr=1e-3)


class Resume(unittest.TestCase):
    NOW = {"kind": "reward", "head": "sequence-classification", "labels": 1, "loss": "mse", "data_digest": "d",
           "max_len": 512, "dense": False, "extra_layers": 0, "likelihood_marker": None, "heads_only": False}

    def test_a_changed_recorded_setting_is_refused_naming_it_stored_and_now(self) -> None:
        for key, value, option in (("likelihood_marker", [1, 2], "--likelihood-features"),
                                   ("heads_only", True, "--heads-only"), ("dense", True, "--dense"),
                                   ("extra_layers", 2, "--extra-layers"), ("max_len", 300, "--max-len")):
            with self.subTest(key):
                with self.assertRaisesRegex(ValueError, rf"{option}.* was {self.NOW[key]!r} in the checkpoint's run, "
                                                        rf"now {value!r}".replace("[", r"\[").replace("]", r"\]")):
                    _check_resume(checkpoint(self.NOW), self.NOW | {key: value}, CFG)
        _check_resume(checkpoint(self.NOW), dict(self.NOW), CFG)

    def test_older_checkpoints_resume_and_their_unset_flags_still_count(self) -> None:
        # Before this version: dense/extra_layers/likelihood_marker/heads_only only when set, no max_len.
        old = {k: self.NOW[k] for k in ("kind", "head", "labels", "loss", "data_digest")}
        _check_resume(checkpoint(old), self.NOW | {"max_len": 100}, CFG)
        with self.assertRaisesRegex(ValueError, "--dense was False in the checkpoint's run, now True"):
            _check_resume(checkpoint(old), self.NOW | {"dense": True}, CFG)
        with self.assertRaisesRegex(ValueError, "--heads-only was False"):
            _check_resume(checkpoint(old), self.NOW | {"heads_only": True}, CFG)
        _check_resume(checkpoint(old | {"dense": True, "extra_layers": 1}),
                      self.NOW | {"dense": True, "extra_layers": 1}, CFG)

    def test_a_changed_likelihood_features_resume_is_refused_before_the_weights_load(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            common = ["--data", str(FIXTURES / "reward_paper_binary.jsonl"), "--init", str(MODELS / "decoder-fp32"),
                      "--labels", "1", "--out", out, "--steps", "2", "--batch", "2", "--threads", "1"]
            self.assertEqual(cli(train_reward.main, [*common, "--stop-after", "1"])[0], 0)
            code, err = cli(train_reward.main, [*common, "--resume", "--likelihood-features"])
        self.assertEqual(code, 1)
        self.assertNotIn("Traceback", err)
        self.assertRegex(err, r"\ntrainer: error: Cannot resume: --likelihood-features .* was None in the checkpoint's "
                              r"run, now \[[\d, ]+\]; [^\n]*\n$")


class MaxLen(unittest.TestCase):
    def test_the_readers_refuse_a_max_len_below_two(self) -> None:
        sft = rows({"prompt_ids": [1, 2], "completion_ids": [3, 4], "ref_top": TOP * 2})
        for n in (1, 0, -5):
            with self.subTest(n):
                with self.assertRaisesRegex(ValueError, rf"--max-len {n}: expected an integer >= 2"):
                    read_sft_data(sft, max_len=n)
                with self.assertRaisesRegex(ValueError, rf"--max-len {n}: expected an integer >= 2"):
                    read_reward_data(FIXTURES / "reward_paper_binary.jsonl", "paper", "sequence-classification", TOK,
                                     max_len=n)

    def test_the_trainers_refuse_it_at_parse_time(self) -> None:
        for main in (train_sft.main, train_reward.main):
            for n in ("1", "0", "-5"):
                with self.subTest(f"{main.__module__} {n}"):
                    code, err = cli(main, ["--data", "x", "--init", "y", "--out", "z", "--max-len", n])
                    self.assertEqual(code, 2)
                    self.assertIn(f"--max-len must be an integer >= 2 (one prompt and one completion or scored token): "
                                  f"current value is {n}", err)

    def test_the_default_is_the_models_context_and_more_is_refused(self) -> None:
        hf, where = model_config(str(MODELS / "decoder-fp32"), None)
        self.assertEqual(resolve_max_len(None, hf, where), 512)
        self.assertEqual(resolve_max_len(300, hf, where), 300)
        with self.assertRaisesRegex(ValueError, r"--max-len 1024: the model's context is 512 tokens "
                                                r"\('max_position_embeddings' in .*decoder-fp32/config.json\)"):
            resolve_max_len(1024, hf, where)
        self.assertEqual(resolve_max_len(None, {"vocab_size": 9}, "--config"), 1024)

    def test_train_reward_refuses_a_max_len_past_the_context(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            code, err = cli(train_reward.main, ["--data", str(FIXTURES / "reward_paper_binary.jsonl"), "--init",
                                                str(MODELS / "decoder-fp32"), "--out", out, "--max-len", "1024"])
        self.assertEqual(code, 1)
        self.assertIn("the model's context is 512 tokens", err)


class UsageErrors(unittest.TestCase):
    ARGS = ["--data", "x", "--init", "y", "--out", "z"]

    def assertUsage(self, main, extra: list[str], message: str) -> None:  # noqa: ANN001, N802
        code, err = cli(main, [*self.ARGS, *extra])
        self.assertEqual(code, 2, err)
        self.assertIn(message, err)

    def test_save_every_must_be_positive(self) -> None:
        for main in (train_sft.main, train_reward.main):
            self.assertUsage(main, ["--save-every", "0"], "--save-every must be an integer >= 1: current value is 0")
        cfg = LoopConfig(out=Path("/tmp/x"), steps=2, batch=1, lr=1e-3, save_every=0)
        with self.assertRaisesRegex(ValueError, "'save_every' must be a positive integer"):
            cfg.check()

    def test_threads_must_be_positive(self) -> None:
        for main in (train_sft.main, train_reward.main):
            self.assertUsage(main, ["--threads", "0"], "--threads must be an integer >= 1: current value is 0")

    def test_beta_must_be_finite_and_not_negative(self) -> None:
        for beta in ("nan", "inf", "-1"):
            with self.subTest(beta):
                self.assertUsage(train_sft.main, ["--beta", beta], "--beta must be a finite number >= 0")

    def test_a_config_missing_a_required_field_names_it(self) -> None:
        with self.assertRaisesRegex(ValueError, "'vocab_size' is missing"):
            model_config(None, "{}")
        with self.assertRaisesRegex(ValueError, r"'hidden_size' must be an integer >= 1, got 'x'"):
            model_config(None, '{"vocab_size": 9, "hidden_size": "x"}')
        with tempfile.TemporaryDirectory() as out:
            code, err = cli(train_sft.main, ["--data", str(FIXTURES / "sft.jsonl"), "--config", "{}", "--tokenizer",
                                             str(MODELS / "decoder-fp32"), "--out", out, "--threads", "1"])
        self.assertEqual(code, 1)
        self.assertRegex(err, r"^trainer: error: Cannot read --config \(inline JSON\): the required field 'vocab_size' "
                              r"is missing.*\n$")

    def test_a_missing_init_names_the_path_and_what_was_expected(self) -> None:
        for main, data in ((train_reward.main, "reward_paper_binary.jsonl"), (train_sft.main, "sft.jsonl")):
            with self.subTest(main.__module__), tempfile.TemporaryDirectory() as out:
                code, err = cli(main, ["--data", str(FIXTURES / data), "--init", "/nonexistent", "--out", out])
                self.assertEqual(code, 1)
                self.assertRegex(err, r"^trainer: error: Cannot read --init /nonexistent: it does not exist "
                                      r"\(expected a model directory [^\n]*\n$")


    def test_train_sft_refuses_a_reward_model_as_init(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            code, err = cli(train_sft.main, ["--data", str(FIXTURES / "sft.jsonl"), "--init",
                                             str(MODELS / "reward-paper-2"), "--out", out, "--threads", "1"])
        self.assertEqual(code, 1)
        self.assertRegex(err, r"^trainer: error: Cannot train a policy from .*reward-paper-2/config\.json: it is a "
                              r"reward model's config \(architectures \['Qwen2ForSequenceClassification'\]")

if __name__ == "__main__":
    unittest.main()
