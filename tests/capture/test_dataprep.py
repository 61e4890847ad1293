"""Preprocessing steps captured by ``dlprov.step`` / ``dlprov.prepare``, checked against the rows
they store: tasks, parameters, dataset descriptions (digests recomputed here), the usage chain,
and Q12 following it. Set tables are ``<df_tag>__<set_tag>``."""
from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys

import pytest

import dlprov
from dlprov.query import q12

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


def pandas_digest(frame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).values.tobytes()
                          ).hexdigest()


def numpy_digest(array) -> str:
    header = f"numpy {array.dtype.str} {array.shape}\n".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def tasks(sql) -> list[tuple[str, str]]:
    return sql("SELECT dt.tag, t.status FROM task t JOIN data_transformation dt "
               "ON dt.id = t.dt_id ORDER BY t.id")


def usage(sql) -> list[tuple[str, str, str]]:
    """(consumer, producer, set) of every task_usage row, in the consumers' order."""
    return sql("""SELECT ct.tag, pt.tag, ds.tag FROM task_usage u
                  JOIN task c ON c.id = u.task_id JOIN data_transformation ct ON ct.id = c.dt_id
                  JOIN task p ON p.id = u.producer_task_id
                  JOIN data_transformation pt ON pt.id = p.dt_id
                  JOIN data_set ds ON ds.id = u.ds_id ORDER BY c.id, p.id, ds.tag""")


def dataset(sql, table: str, producer: str, where: str = "") -> dict:
    """The one element of a dataset set (its JSON attributes parsed)."""
    rows = sql(f"""SELECT name, kind, shape, n_records, columns, dtypes, digest, record_ids,
                          record_ids_digest, dataset_dir, {producer}_task_id
                   FROM "{table}" {where}""")
    assert len(rows) == 1, rows
    keys = ("name", "kind", "shape", "n_records", "columns", "dtypes", "digest", "record_ids",
            "record_ids_digest", "dataset_dir", "task_id")
    found = dict(zip(keys, rows[0]))
    for key in ("shape", "columns", "dtypes", "record_ids"):
        found[key] = None if found[key] is None else json.loads(found[key])
    return found


# -- the chain: pandas, NumPy, scikit-learn, then training -------------------------------------

def raw_frame():
    return pd.DataFrame({"height": [1.0, 2.0, None, 4.0, 5.0, 6.0],
                         "weight": [10.0, 20.0, 30.0, 40.0, 50.0, 80.0],
                         "color": ["red", "blue", "red", "green", "blue", "red"]})


def test_a_pandas_numpy_sklearn_chain_links_itself_and_q12_follows_it(sql, tmp_path) -> None:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    csv = tmp_path / "people.csv"
    raw_frame().to_csv(csv, index=False)
    with dlprov.run("prep", capture_environment=False) as run:
        @dlprov.step("loaddata", run=run)
        def load(path):
            return pd.read_csv(path)

        @dlprov.step("dropna", run=run)
        def dropna(df, how="any"):
            return df.dropna(how=how)

        @dlprov.step("normalizedata", run=run)
        def normalize(df, columns=("height", "weight"), method="minmax"):
            out = df.copy()
            for c in columns:
                out[c] = (out[c] - out[c].min()) / (out[c].max() - out[c].min())
            return out

        @dlprov.step("onehotencoding", run=run)
        def one_hot(df, column):
            return pd.get_dummies(df, columns=[column], dtype=float)

        @dlprov.step(run=run)  # named after the function
        def to_features(df):
            return np.ascontiguousarray(df.to_numpy(dtype=np.float64))

        loaded = load(csv)
        clean = dropna(loaded)
        normalized = normalize(clean, method="minmax")
        encoded = one_hot(normalized, column="color")
        x = to_features(encoded)
        pipeline = Pipeline([("scale", StandardScaler()),
                             ("pca", PCA(n_components=2, svd_solver="full"))])
        reduced = dlprov.step(pipeline, run=run).fit_transform(x)

        # a training task that depends on the last step through the data it is given
        with dlprov.prepare("train", reduced, run=run, params={"learning_rate": 0.01}) as train:
            (tmp_path / "model.pt").write_bytes(b"weights")
            model_id = train.task.model(tmp_path / "model.pt")

    chain = ["loaddata", "dropna", "normalizedata", "onehotencoding", "to_features", "scale",
             "pca", "train"]
    assert tasks(sql) == [(t, "finished") for t in chain]

    # parameters: the plain arguments, defaults included; the estimator's class and get_params
    assert sql("SELECT path FROM prep__iloaddata") == [(str(csv),)]
    assert sql("SELECT how FROM prep__idropna") == [("any",)]
    [(columns, method)] = sql("SELECT columns, method FROM prep__inormalizedata")
    assert (json.loads(columns), method) == (["height", "weight"], "minmax")
    assert sql("SELECT column FROM prep__ionehotencoding") == [("color",)]
    assert "ito_features" not in {t for (t,) in sql("SELECT tag FROM data_set")}  # none given
    assert sql("SELECT estimator, with_mean, with_std FROM prep__iscale") == [
        ("sklearn.preprocessing._data.StandardScaler", 1.0, 1.0)]
    assert sql("SELECT estimator, n_components, svd_solver FROM prep__ipca") == [
        ("sklearn.decomposition._pca.PCA", 2.0, "full")]
    assert sql("SELECT learning_rate FROM prep__itrain") == [(0.01,)]

    # each output: shape, columns, dtypes and a digest recomputed here from the data itself
    expected_raw = pd.read_csv(csv)
    expected_clean = expected_raw.dropna()
    assert pandas_digest(loaded) == pandas_digest(expected_raw)
    for table, producer, frame in (("prep__oloaddata", "loaddata", expected_raw),
                                   ("prep__odropna", "dropna", expected_clean),
                                   ("prep__onormalizedata", "normalizedata", normalized),
                                   ("prep__oonehotencoding", "onehotencoding", encoded)):
        found = dataset(sql, table, producer)
        assert found["kind"] == "pandas.DataFrame"
        assert found["shape"] == list(frame.shape)
        assert found["n_records"] == len(frame)
        assert found["columns"] == list(frame.columns)
        assert found["dtypes"] == {c: str(t) for c, t in frame.dtypes.items()}
        assert found["digest"] == pandas_digest(frame)
        assert found["name"] == "return"
    assert dataset(sql, "prep__odropna", "dropna")["shape"] == [5, 3]
    assert dataset(sql, "prep__oonehotencoding", "onehotencoding")["columns"] == [
        "height", "weight", "color_blue", "color_green", "color_red"]
    for table, producer, array in (("prep__oto_features", "to_features", x),
                                   ("prep__oscale", "scale", StandardScaler().fit_transform(x)),
                                   ("prep__opca", "pca", reduced)):
        found = dataset(sql, table, producer)
        assert (found["kind"], found["shape"], found["columns"], found["dtypes"]) == (
            "numpy.ndarray", list(array.shape), None, "float64")
        assert found["digest"] == numpy_digest(array)

    # the links: each step used what the one before produced; nothing was written by hand
    assert usage(sql) == [
        ("dropna", "loaddata", "oloaddata"),
        ("normalizedata", "dropna", "odropna"),
        ("onehotencoding", "normalizedata", "onormalizedata"),
        ("to_features", "onehotencoding", "oonehotencoding"),
        ("scale", "to_features", "oto_features"),
        ("pca", "scale", "oscale"),
        ("train", "pca", "opca")]
    assert sql("SELECT count(*) FROM task_dependency") == [(7,)]

    # Q12: the whole chain, in order, from the raw input to the training
    answer = q12(model_id, dataflow="prep").records()
    steps = list(dict.fromkeys((r["step"], r["transformation"]) for r in answer))
    assert steps == list(enumerate(chain, start=1))
    used = {(r["transformation"], r["set_tag"]) for r in answer if r["role"] == "used"}
    assert {("normalizedata", "inormalizedata"), ("normalizedata", "odropna"),
            ("pca", "oscale"), ("train", "opca")} <= used

    # the Pipeline's own steps were fitted: it transforms as it did
    np.testing.assert_allclose(pipeline.transform(x), reduced)


def test_each_position_of_a_result_is_a_set_and_the_next_step_uses_only_its_own(sql) -> None:
    with dlprov.run("prep", capture_environment=False) as run, dlprov.use_run(run):
        @dlprov.step("splitdata")
        def split(df, fraction=0.5):
            cut = int(len(df) * fraction)
            return df.iloc[:cut], df.iloc[cut:]

        @dlprov.step("fit", outputs="ofitted")
        def fit(df):
            return df.fillna(0.0)

        train, test = split(raw_frame())
        fit(train)
    assert usage(sql) == [("fit", "splitdata", "osplitdata_0")]
    assert dataset(sql, "prep__osplitdata_0", "splitdata")["shape"] == [3, 3]
    assert dataset(sql, "prep__osplitdata_1", "splitdata")["digest"] == pandas_digest(test)
    assert dataset(sql, "prep__osplitdata_1", "splitdata")["name"] == "return[1]"
    assert dataset(sql, "prep__ofitted", "fit")["digest"] == pandas_digest(train.fillna(0.0))


# -- raw inputs, record ids, bounds -------------------------------------------------------------

def test_raw_inputs_are_recorded_by_each_step_using_them_with_bounded_record_ids(sql) -> None:
    small = raw_frame().set_index(pd.Index([f"p{i}" for i in range(6)], name="person"))
    large = pd.DataFrame({"key": np.arange(500) * 3, "value": np.linspace(0, 1, 500)})
    with dlprov.run("prep", capture_environment=False) as run:
        @dlprov.step("summarize", run=run, record_ids="index", max_ids=10)
        def summarize(df):
            return df.describe()

        @dlprov.step("select", run=run, record_ids="key", max_ids=10)
        def select(df, above=0.5):
            return df[df["value"] > above]

        summarize(small)
        summarize(small)  # a second task using the same raw data records it too
        select(large)
    rows = sql("SELECT name, record_ids, record_ids_digest, n_records, digest, "
               "summarize_task_id FROM prep__isummarizedataset ORDER BY id")
    assert [(r[0], json.loads(r[1]), r[3], r[4]) for r in rows] == [
        ("df", [f"p{i}" for i in range(6)], 6, pandas_digest(small))] * 2
    assert rows[0][5] != rows[1][5]  # one element per consuming task
    ids = hashlib.sha256(pd.util.hash_pandas_object(small.index, index=False).values.tobytes())
    assert rows[0][2] == ids.hexdigest()
    # 500 ids are more than max_ids: a count and a digest, not the list
    found = dataset(sql, "prep__iselectdataset", "select")
    assert found["record_ids"] is None and found["n_records"] == 500
    expected = pd.util.hash_pandas_object(large["key"], index=False).values.tobytes()
    assert found["record_ids_digest"] == hashlib.sha256(expected).hexdigest()
    selected = dataset(sql, "prep__oselect", "select")
    assert selected["record_ids"] is None
    assert selected["n_records"] == len(large[large["value"] > 0.5]) > 10
    assert usage(sql) == []  # raw data is nobody's output


def test_unhashable_and_huge_data_are_described_within_bounds(sql) -> None:
    tagged = pd.DataFrame({"id": [1, 2, 3], "tags": [["a"], ["b", "c"], []]})
    wide = pd.DataFrame(np.zeros((4, 30)), columns=[f"f{i}" for i in range(30)])
    with dlprov.run("prep", capture_environment=False) as run, dlprov.use_run(run):
        @dlprov.step("explode")
        def explode(df):
            return df.explode("tags")

        @dlprov.step("widen", max_columns=5)
        def widen(df):
            return df + 1.0

        # data over max_digest_bytes is not hashed: the next step finds it by identity
        @dlprov.step("scale", max_digest_bytes=100)
        def scale(df, factor=2.0):
            return df * factor

        @dlprov.step("shift", max_digest_bytes=100)
        def shift(df):
            return df - 1.0

        explode(tagged)
        widen(wide)
        shift(scale(wide))
    found = dataset(sql, "prep__iexplodedataset", "explode")
    as_text = pd.util.hash_pandas_object(tagged.astype(str), index=True).values.tobytes()
    assert found["digest"] == hashlib.sha256(as_text).hexdigest()
    assert dataset(sql, "prep__oexplode", "explode")["shape"] == [4, 2]
    found = dataset(sql, "prep__owiden", "widen")
    assert found["shape"] == [4, 30] and found["columns"] == ["f0", "f1", "f2", "f3", "f4"]
    assert len(found["dtypes"]) == 5
    assert dataset(sql, "prep__oscale", "scale")["digest"] is None
    assert usage(sql) == [("shift", "scale", "oscale")]


def test_data_changed_in_place_after_a_step_is_new_input(sql, caplog) -> None:
    with dlprov.run("prep", capture_environment=False) as run, dlprov.use_run(run):
        @dlprov.step("fill")
        def fill(df):
            return df.fillna(0.0)

        @dlprov.step("total")
        def total(df):
            return df[["height", "weight"]].sum(axis=1)

        filled = fill(raw_frame())
        filled.loc[0, "height"] = 99.0
        with caplog.at_level(logging.WARNING, logger="dlprov.capture"):
            total(filled)
    assert "changed in place" in caplog.text
    assert usage(sql) == []
    assert dataset(sql, "prep__itotaldataset", "total")["digest"] == pandas_digest(filled)
    assert dataset(sql, "prep__ototal", "total")["kind"] == "pandas.Series"


# -- the context manager, files, scikit-learn methods ------------------------------------------

def test_prepare_records_a_block_and_the_files_its_outputs_were_saved_to(sql, tmp_path) -> None:
    with dlprov.run("prep", capture_environment=False) as run:
        @dlprov.step("loaddata", run=run, outputs="oloaddata")
        def load():
            frame = raw_frame()
            frame.to_csv(dlprov.saved(tmp_path / "raw.csv", frame))
            return frame

        raw = load()
        with dlprov.prepare("dropna", raw, params={"how": "any"}, run=run) as step:
            clean = step.output(raw.dropna(how="any"), path=tmp_path / "clean.csv")
            clean.to_csv(tmp_path / "clean.csv")
    assert dataset(sql, "prep__oloaddata", "loaddata")["dataset_dir"] == str(tmp_path / "raw.csv")
    found = dataset(sql, "prep__odropna", "dropna")
    assert found["dataset_dir"] == str(tmp_path / "clean.csv")
    assert found["digest"] == pandas_digest(raw.dropna())
    assert sql("SELECT how FROM prep__idropna") == [("any",)]
    assert usage(sql) == [("dropna", "loaddata", "oloaddata")]


def test_a_bound_fit_transform_and_transform_are_tasks(sql) -> None:
    from sklearn.preprocessing import MinMaxScaler

    train = np.arange(12, dtype=np.float64).reshape(6, 2)
    test = np.arange(4, dtype=np.float64).reshape(2, 2) + 3
    with dlprov.run("prep", capture_environment=False) as run:
        scaler = MinMaxScaler(feature_range=(0, 2))
        scaled = dlprov.step("scaling", run=run)(scaler.fit_transform)(train)
        scaled_test = dlprov.step(scaler, run=run).transform(test)  # named after the class
    assert tasks(sql) == [("scaling", "finished"), ("minmaxscaler", "finished")]
    [(estimator, feature_range)] = sql("SELECT estimator, feature_range FROM prep__iscaling")
    assert estimator.endswith(".MinMaxScaler") and json.loads(feature_range) == [0, 2]
    assert dataset(sql, "prep__oscaling", "scaling")["digest"] == numpy_digest(scaled)
    assert dataset(sql, "prep__ominmaxscaler", "minmaxscaler")["digest"] == \
        numpy_digest(scaled_test)
    assert dataset(sql, "prep__iscalingdataset", "scaling")["name"] == "X"


# -- failures -----------------------------------------------------------------------------------

def test_an_exception_inside_a_step_fails_its_task_and_propagates(sql) -> None:
    with dlprov.run("prep", capture_environment=False) as run:
        @dlprov.step("explode", run=run)
        def explode(df):
            raise ValueError("no column named tags")

        with pytest.raises(ValueError, match="no column named tags"):
            explode(raw_frame())
        with pytest.raises(KeyError), dlprov.prepare("pick", raw_frame(), run=run) as step:
            step.output(raw_frame()["missing"])
    [(status, error)] = sql("SELECT status, error_msg FROM task t JOIN data_transformation dt "
                            "ON dt.id = t.dt_id WHERE dt.tag = 'explode'")
    assert status == "failed" and "no column named tags" in error
    assert [s for _, s in tasks(sql)] == ["failed", "failed"]
    assert "oexplode" not in {t for (t,) in sql("SELECT tag FROM data_set")}
    assert sql("SELECT count(*) FROM prep__iexplodedataset") == [(1,)]  # what it was given


def test_a_step_outside_any_run_raises_a_clear_error(store_path) -> None:
    @dlprov.step("dropna")
    def dropna(df):
        return df.dropna()

    with pytest.raises(dlprov.NoActiveRun, match="'dropna' was called outside any run"):
        dropna(raw_frame())
    with pytest.raises(dlprov.NoActiveRun), dlprov.prepare("dropna", raw_frame()):
        pass
    with pytest.raises(dlprov.NoActiveRun, match="outside any step"):
        dlprov.saved("x.csv", raw_frame())
    with dlprov.run("prep", capture_environment=False):
        dropna(raw_frame())  # the run of the enclosing `with` block is current
    with pytest.raises(dlprov.NoActiveRun):  # ... and only inside it
        dropna(raw_frame())
    run = dlprov.run("prep", capture_environment=False)  # a run without a `with` block
    with dlprov.use_run(run):
        dropna(raw_frame())
    with pytest.raises(dlprov.NoActiveRun):  # is current only inside use_run
        dropna(raw_frame())
    run.end()


def test_a_parameter_of_another_type_later_is_kept_as_text_or_left_out(sql, caplog) -> None:
    with dlprov.run("prep", capture_environment=False) as run, dlprov.use_run(run):
        @dlprov.step("impute")
        def impute(df, strategy=None, fill=0.0):
            return df.fillna(0.0)

        impute(raw_frame())
        impute(raw_frame(), strategy="mean", fill=float("nan"))
        with caplog.at_level(logging.WARNING, logger="dlprov.capture"):
            impute(raw_frame(), strategy=["median"], fill="auto")
    rows = sql("SELECT strategy, fill FROM prep__iimpute ORDER BY id")
    assert [(None if s is None else json.loads(s), f) for s, f in rows] == [
        (None, 0.0), ("mean", None), (["median"], None)]
    assert "'fill' is numeric" in caplog.text


def test_importing_dlprov_imports_no_data_library() -> None:
    code = ("import sys, dlprov; "
            "print(sorted(m for m in ('pandas', 'numpy', 'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_sparse_result_is_a_dataset_with_its_canonical_digest(sql) -> None:
    from sklearn.preprocessing import OneHotEncoder

    with dlprov.run("prep", capture_environment=False) as run:
        encoded = dlprov.step(OneHotEncoder(), run=run).fit_transform(raw_frame()[["color"]])
    found = dataset(sql, "prep__oonehotencoder", "onehotencoder")
    assert found["kind"] == "scipy.sparse." + type(encoded).__name__
    assert found["shape"] == [6, 3]
    csr = encoded.tocsr()
    csr.sort_indices()
    expected = hashlib.sha256(f"scipy.sparse {csr.dtype.str} {csr.shape}\n".encode() +
                              csr.data.tobytes() + csr.indices.tobytes() + csr.indptr.tobytes())
    assert found["digest"] == expected.hexdigest()
    assert sql("SELECT handle_unknown FROM prep__ionehotencoder") == [("error",)]
