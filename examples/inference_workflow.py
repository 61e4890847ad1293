"""Experiment 3 of the DLProv paper, small: an inference workflow like the handwriting one.

LoadData -> LoadPretrainedModel -> RunCraft (word detection with a threshold) ->
CropWordsFromImage -> RunInference (a decoder) -> RunComparison (accuracy against the truth).

It shows how a user extends the data model with transformations and attributes of their own:
nothing is declared beforehand, each set's attributes come from its first element. Pages are
synthetic (generated here: no download); the "pretrained model" is a fixed glyph codebook saved
to a file, and the decoders are nearest-glyph matchers with and without a language prior.

Run: ``python examples/inference_workflow.py`` (uses ``$DLPROV_STORE`` or ./dlprov.db).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import dlprov

DATAFLOW = "handwriting"
GLYPH = 5                                   # each character is a 5x5 glyph
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
TEXT = "provenance tells where a model came from"
LEXICON = sorted(set(TEXT.split()))

# The paper's adapted Q6: over all executions, the sample, threshold and decoder of the
# inference with the highest accuracy.
BEST_INFERENCE = """
SELECT c.sample, c.threshold, d.decoder, c.inference_metric
FROM oruncomparison c
JOIN task t ON t.id = c.runcomparison_task_id
JOIN task ti ON ti.df_exec = t.df_exec
JOIN imodelinput d ON d.runinference_task_id = ti.id
WHERE c.inference_metric = (SELECT max(inference_metric) FROM oruncomparison)
ORDER BY c.sample, c.threshold"""


def codebook(seed: int = 0) -> np.ndarray:
    """One random 5x5 binary glyph per letter: the 'pretrained' recogniser's weights."""
    return (np.random.default_rng(seed).random((len(ALPHABET), GLYPH, GLYPH)) > 0.5
            ).astype(np.float32)


def render_page(text: str, glyphs: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """One line of words, 2 px between letters and 8 px between words, plus pixel noise."""
    words = text.split()
    width = sum(len(w) * (GLYPH + 2) for w in words) + 8 * len(words)
    page = np.zeros((GLYPH + 4, width), dtype=np.float32)
    x = 4
    for word in words:
        for ch in word:
            page[2:2 + GLYPH, x:x + GLYPH] = glyphs[ALPHABET.index(ch)]
            x += GLYPH + 2
        x += 8
    return page + np.random.default_rng(seed).normal(0, noise, page.shape).astype(np.float32)


def detect_words(page: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Word boxes (start, end columns): runs of ink columns separated by gaps over 4 px."""
    ink = (page > threshold).any(axis=0)
    boxes, start, gap = [], None, 0
    for x, has_ink in enumerate(ink):
        if has_ink:
            start = x if start is None else start
            gap = 0
        elif start is not None:
            gap += 1
            if gap > 4:
                boxes.append((start, x - gap + 1))
                start, gap = None, 0
    if start is not None:
        boxes.append((start, len(ink)))
    return boxes


def decode(crop: np.ndarray, glyphs: np.ndarray, decoder: str) -> str:
    """Letters by nearest glyph; the 'lexicon' decoder then snaps to the closest known word."""
    letters = []
    for x in range(0, crop.shape[1] - GLYPH + 1, GLYPH + 2):
        cell = crop[2:2 + GLYPH, x:x + GLYPH]
        letters.append(ALPHABET[int(np.argmin(((glyphs - cell) ** 2).sum(axis=(1, 2))))])
    word = "".join(letters)
    if decoder == "lexicon":
        return min(LEXICON, key=lambda w: (sum(a != b for a, b in zip(w, word))
                                           + abs(len(w) - len(word))))
    return word


def run_inference(sample: int, threshold: float, decoder: str, *, store=None,
                  workdir: Path = Path("inference-output")) -> float:
    """One execution; returns its accuracy (the share of words read right)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with dlprov.run(DATAFLOW, store=store) as run:
        with run.task("loaddata") as load:
            load.input("iloaddata", sample=sample, text=TEXT, noise=0.25)
            page = render_page(TEXT, codebook(), 0.25, seed=sample)
            page_path = workdir / f"page-{sample}.npy"
            np.save(page_path, page)
            load.output("oloaddata", image=page_path, width=page.shape[1])
        with run.task("loadpretrainedmodel") as load_model:
            model_path = workdir / "glyph-codebook.npy"
            np.save(model_path, codebook())
            load_model.model(model_path, name="glyph-codebook", framework="numpy",
                             set_tag="opretrainedmodel")
        with run.task("runcraft", depends_on=load) as craft:
            craft.input("iruncraftinput", threshold=threshold, sample=sample)
            boxes = detect_words(page, threshold)
            craft.output("oruncraftoutput", n_boxes=len(boxes), boxes=json.dumps(boxes),
                         sample=sample)
        with run.task("cropwordsfromimage", depends_on=[load, craft]) as crop:
            crops = [page[:, a:b] for a, b in boxes]
            crops_path = workdir / f"crops-{sample}-{threshold}.npz"
            np.savez(crops_path, *crops)
            crop.output("ocropwords", crops=crops_path, n_crops=len(crops))
        with run.task("runinference", depends_on=[crop, load_model]) as infer:
            infer.input("imodelinput", decoder=decoder)
            words = [decode(c, codebook(), decoder) for c in crops]
            infer.output("oruninference", transcription=" ".join(words))
        with run.task("runcomparison", depends_on=infer) as compare:
            truth = TEXT.split()
            right = sum(a == b for a, b in zip(words, truth))
            accuracy = right / len(truth)
            compare.output("oruncomparison", inference_metric=accuracy, threshold=threshold,
                           sample=sample, words_expected=len(truth), words_read=len(words))
    return accuracy


def main(argv: list[str] | None = None, store=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--output-dir", default="inference-output")
    args = parser.parse_args(argv)
    for sample in range(args.samples):
        for threshold in (0.3, 0.5, 0.9):
            for decoder in ("greedy", "lexicon"):
                run_inference(sample, threshold, decoder, store=store,
                              workdir=Path(args.output_dir))
    best = dlprov.sql(BEST_INFERENCE, store=store, dataflow=DATAFLOW).records()
    print("Best inference (sample, threshold, decoder, accuracy):")
    for row in best:
        print(f"  sample {row['sample']:.0f}, threshold {row['threshold']}, "
              f"decoder {row['decoder']}: {row['inference_metric']:.2f}")
    return best


if __name__ == "__main__":
    main()
