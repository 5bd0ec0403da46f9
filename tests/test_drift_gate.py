"""The drift core without services: profiles, statistics, the gate's verdicts, bad data and the config format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mlops_layer.drift import stats
from mlops_layer.drift.config import ColumnRule, DriftConfig
from mlops_layer.drift.gate import check
from mlops_layer.drift.profile import ReferenceProfile, build_profile
from mlops_layer.errors import ConfigError, InputError


def normal_frame(n: int, seed: int, shifts: dict[str, float] | None = None, cols: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shifts = shifts or {}
    return pd.DataFrame({f"x{i}": rng.normal(size=n) + shifts.get(f"x{i}", 0.0) for i in range(cols)})


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    frame = normal_frame(200_000, 1)
    rng = np.random.default_rng(2)
    frame["color"] = rng.choice(["red", "green", "blue"], size=len(frame), p=[0.5, 0.3, 0.2])
    frame["count"] = rng.poisson(4, size=len(frame))
    return frame


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return build_profile(reference)


def batch(n: int, seed: int, shifts: dict[str, float] | None = None, colors: list[float] | None = None) -> pd.DataFrame:
    frame = normal_frame(n, seed, shifts)
    rng = np.random.default_rng(seed + 100)
    frame["color"] = rng.choice(["red", "green", "blue"], size=n, p=colors or [0.5, 0.3, 0.2])
    frame["count"] = rng.poisson(4, size=n)
    return frame


# -- profile ----------------------------------------------------------------------------------------------------
def test_profile_round_trips_and_is_deterministic(reference: pd.DataFrame, profile: ReferenceProfile) -> None:
    text = profile.to_json()
    assert ReferenceProfile.from_json(text).to_json() == text
    assert build_profile(reference).to_json() == text  # same data, byte-identical profile
    x0 = profile.columns["x0"]
    assert x0.kind == "numeric" and len(x0.bin_proportions) == 10 and len(x0.quantiles) >= 200
    assert sum(x0.bin_proportions) == pytest.approx(1.0)
    assert x0.std == pytest.approx(1.0, abs=0.01) and x0.null_rate == 0.0
    color = profile.columns["color"]
    assert color.kind == "categorical" and dict(color.frequencies)["red"] == pytest.approx(0.5, abs=0.01)
    assert profile.n_rows == 200_000 and profile.data_hash is None
    assert len(text) < 60_000  # compact: a few KB per column, whatever the row count
    assert json.loads(text)["schema_version"] == 1


def test_profile_top_k_other_bucket_and_hash() -> None:
    frame = pd.DataFrame({"c": [f"v{i % 80}" for i in range(8000)]})
    p = build_profile(frame, top_k=50, data_hash="md5:abc")
    col = p.columns["c"]
    assert len(col.frequencies) == 50 and col.other == pytest.approx(30 / 80) and not col.complete
    assert p.data_hash == "md5:abc"


def test_profile_refuses_mixed_types_naming_the_column() -> None:
    frame = pd.DataFrame({"ok": [1.0, 2.0, 3.0, 4.0], "mixed": [1, "a", 2.5, None]})
    with pytest.raises(InputError, match="column 'mixed' mixes types"):
        build_profile(frame)
    text_numbers = pd.DataFrame({"amount": ["1.5", "2.0", "3.25", "oops", "4"]})
    with pytest.raises(InputError, match="'amount' mixes numbers and text.*'oops'"):
        build_profile(text_numbers)
    stamps = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=3), "x": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match="'ts' holds timestamps") as exc:
        build_profile(stamps)
    assert "--exclude ts" in str(exc.value)
    assert list(build_profile(stamps, exclude=["ts"]).columns) == ["x"]


def test_profile_of_empty_frame_and_unknown_columns() -> None:
    with pytest.raises(InputError, match="no rows"):
        build_profile(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(InputError, match="no column.*'nope'"):
        build_profile(pd.DataFrame({"x": [1.0]}), columns=["nope"])


# -- verdicts ---------------------------------------------------------------------------------------------------
def test_half_sigma_shift_flags_exactly_the_shifted_columns(profile: ReferenceProfile) -> None:
    result = check(profile, batch(50_000, 7, {"x1": 0.5, "x4": 0.5}))
    assert result.drifted_columns == ("x1", "x4")
    by_name = {c.name: c for c in result.columns}
    assert by_name["x1"].method == "wasserstein" and by_name["x1"].score == pytest.approx(0.5, abs=0.03)
    assert by_name["x1"].scores["psi"] > 0.1  # PSI on the reference deciles agrees
    assert by_name["x0"].score < 0.05
    assert result.share == pytest.approx(2 / 8)
    assert not result.drift and result.passed  # 2 of 8 columns is below the default drift share 0.5
    assert not result.significance_tested and by_name["x1"].p_value is None


def test_dataset_drift_share_and_importance_weights(profile: ReferenceProfile) -> None:
    data = batch(20_000, 8, {"x0": 0.5, "x1": 0.5, "x2": 0.5, "x3": 0.5})
    result = check(profile, data)
    assert result.drift and not result.passed and result.share == pytest.approx(0.5)
    assert "drift share 0.50 >= 0.50" in result.summary()
    weighted = check(profile, data, DriftConfig(importance={"x0": 0.01, "x1": 0.01, "x2": 0.01, "x3": 0.01, "x4": 1}))
    # unlisted columns get the mean listed weight; the drifted ones hardly matter here
    assert weighted.share < 0.1 and not weighted.drift
    strict = check(profile, batch(20_000, 9, {"x5": 0.5}), DriftConfig(drift_share=0.0))
    assert strict.drift and strict.drifted_columns == ("x5",)


def test_tiny_shift_at_large_n_is_not_drift_though_p_values_say_so(profile: ReferenceProfile) -> None:
    data = batch(200_000, 10, {f"x{i}": 0.03 for i in range(6)})
    result = check(profile, data)
    assert result.drifted_columns == () and result.passed
    assert all(c.score < 0.06 for c in result.columns if c.kind == "numeric")
    # the point of effect sizes: a p-value test calls this drift on every shifted column
    assert sps.ks_2samp(data["x0"], normal_frame(200_000, 11)["x0"]).pvalue < 1e-6


def test_categorical_drift(profile: ReferenceProfile) -> None:
    result = check(profile, batch(20_000, 12, colors=[0.3, 0.5, 0.2]))
    color = next(c for c in result.columns if c.name == "color")
    assert color.kind == "categorical" and color.method == "jensenshannon" and color.drifted
    assert color.score == pytest.approx(0.157, abs=0.02)
    assert result.drifted_columns == ("color",)


def test_results_are_deterministic(profile: ReferenceProfile) -> None:
    data = batch(5_000, 13, {"x2": 0.3})
    assert check(profile, data).to_dict() == check(profile, data.copy()).to_dict()
    small = batch(300, 14, {"x2": 0.6})
    assert check(profile, small).to_dict() == check(profile, small).to_dict()


def test_small_batches_need_a_corrected_significance_test(profile: ReferenceProfile) -> None:
    shifted = check(profile, batch(400, 15, {"x3": 0.6}))
    assert shifted.significance_tested
    assert shifted.drifted_columns == ("x3",)
    x3 = next(c for c in shifted.columns if c.name == "x3")
    assert x3.p_value is not None and x3.p_value < 0.001
    # noise in 30 unshifted rows has a large effect size but no significance
    noisy = check(profile, batch(30, 16))
    assert noisy.drifted_columns == () and any(c.score > 0.1 for c in noisy.columns)
    holm = check(profile, batch(400, 15, {"x3": 0.6}), DriftConfig(correction="holm"))
    assert holm.drifted_columns == ("x3",)
    ks = check(profile, batch(400, 15, {"x3": 0.6}), DriftConfig(numeric_method="ks"))
    ks3 = next(c for c in ks.columns if c.name == "x3")
    assert ks3.method == "ks" and ks3.score == ks3.p_value and ks3.threshold == 0.05 and ks3.drifted


def test_one_row_batch_works(profile: ReferenceProfile) -> None:
    result = check(profile, batch(1, 17, {"x0": 3.0}))
    assert result.n_current == 1 and result.significance_tested and result.passed
    assert result.drifted_columns == () and result.schema_problems == ()
    assert all(c.score is not None and c.note == "too few rows (1 < 10) to call drift" for c in result.columns)
    # a few rows far away do count once there are min_rows of them
    assert check(profile, batch(12, 17, {"x0": 3.0})).drifted_columns == ("x0",)
    one = batch(1, 17)
    one.loc[0, "color"] = "purple"
    assert "'color' has 100.0% values never seen" in check(profile, one).schema_problems[0]


def test_per_column_overrides(profile: ReferenceProfile) -> None:
    cfg = DriftConfig.from_dict({"columns": {"x1": {"method": "psi", "threshold": 0.5}, "color": {"method": "psi"}}})
    result = check(profile, batch(20_000, 18, {"x1": 0.5}), cfg)
    x1 = next(c for c in result.columns if c.name == "x1")
    assert x1.method == "psi" and x1.threshold == 0.5 and x1.score < 0.5 and not x1.drifted
    assert next(c for c in result.columns if c.name == "color").method == "psi"
    with pytest.raises(ConfigError, match="'wasserstein' does not apply to categorical column 'color'"):
        check(profile, batch(100, 1), DriftConfig(columns={"color": ColumnRule(method="wasserstein")}))


# -- schema gate ------------------------------------------------------------------------------------------------
def test_schema_problems_fail_the_check(profile: ReferenceProfile) -> None:
    data = batch(2_000, 19).drop(columns=["x2"]).assign(user_id=range(2_000))
    data.loc[:999, "x3"] = np.nan
    result = check(profile, data)
    assert not result.passed and not result.drift and result.status == "schema"
    text = "\n".join(result.schema_problems)
    assert "column 'x2' is in the reference but missing from the batch" in text
    assert "column 'user_id' is in the batch but not in the reference" in text and "--exclude user_id" in text
    assert "null rate of column 'x3' rose from 0.0% to 50.0%" in text
    assert (
        check(
            profile, data.drop(columns=["x3"]).assign(x2=0.0, x3=0.0), DriftConfig(exclude=("user_id",))
        ).schema_problems
        == ()
    )


def test_unseen_categories_beyond_a_share(profile: ReferenceProfile) -> None:
    data = batch(1_000, 20)
    data.loc[:99, "color"] = "purple"
    result = check(profile, data)
    assert any(
        "'color' has 10.0% values never seen in the reference (e.g. 'purple'" in p for p in result.schema_problems
    )
    data.loc[:99, "color"] = "red"
    data.loc[:9, "color"] = "purple"  # 1%: within the default 5%
    assert check(profile, data).schema_problems == ()


def test_non_numeric_value_in_numeric_column_names_column_and_value(profile: ReferenceProfile) -> None:
    data = batch(500, 21).astype({"x1": object})
    data.loc[7, "x1"] = "n/a?"
    result = check(profile, data)
    assert any(
        "'x1' is numeric in the reference but has 1 non-numeric value(s)" in p and "'n/a?'" in p
        for p in result.schema_problems
    )
    assert not result.passed


def test_nan_and_infinities(profile: ReferenceProfile) -> None:
    data = batch(5_000, 22)
    data.loc[:4, "x0"] = np.inf
    data.loc[5:9, "x0"] = -np.inf
    data.loc[10:19, "x1"] = np.nan
    result = check(profile, data)
    assert result.schema_problems == ("column 'x0' has 10 infinite value(s) in the batch; the reference had none",)
    x0 = next(c for c in result.columns if c.name == "x0")
    assert x0.score is not None and x0.score < 0.05  # infinities are left out of the statistics
    ref = pd.DataFrame({"v": [1.0, np.inf, np.nan, 2.0, 3.0] * 100})
    p = build_profile(ref)
    v = p.columns["v"]
    assert v.null_rate == pytest.approx(0.2) and v.inf_rate == pytest.approx(0.2) and v.n_valid == 300
    assert ReferenceProfile.from_json(p.to_json()).columns["v"] == v


def test_all_null_column() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0), "empty": [np.nan] * 100, "label": [None] * 100})
    p = build_profile(ref)
    assert p.columns["empty"].n_valid == 0 and p.columns["empty"].null_rate == 1.0
    same = check(p, ref.copy())
    assert same.passed
    assert {c.name: c.note for c in same.columns}["empty"] == "no values in the reference"
    filled = ref.assign(empty=1.0)
    assert "'empty' was entirely null in the reference but has 100 value(s) now" in check(p, filled).schema_problems[0]
    # all null in the batch where the reference had values: a null-rate jump, and no score
    gone = check(p, ref.assign(x=np.nan))
    assert "null rate of column 'x' rose from 0.0% to 100.0%" in gone.schema_problems[0]
    assert {c.name: c.note for c in gone.columns}["x"] == "no values in the batch"


def test_constant_reference_column() -> None:
    ref = pd.DataFrame({"k": [5.0] * 1000, "x": np.linspace(0, 1, 1000)})
    p = build_profile(ref)
    k = p.columns["k"]
    assert k.std == 0.0 and k.scale > 0
    assert next(c for c in check(p, ref).columns if c.name == "k").score == 0.0
    moved = check(p, ref.assign(k=5.5))
    col = next(c for c in moved.columns if c.name == "k")
    assert col.drifted and np.isfinite(col.score)


def test_empty_batch_is_refused(profile: ReferenceProfile) -> None:
    with pytest.raises(InputError, match="no rows"):
        check(profile, batch(10, 1).iloc[0:0])


def test_prediction_drift_is_reported_apart() -> None:
    rng = np.random.default_rng(23)
    ref = pd.DataFrame({"x": rng.normal(size=10_000), "pred": rng.choice(["yes", "no"], size=10_000, p=[0.2, 0.8])})
    p = build_profile(ref)
    cur = pd.DataFrame({"x": rng.normal(size=10_000), "pred": rng.choice(["yes", "no"], size=10_000, p=[0.6, 0.4])})
    result = check(p, cur, DriftConfig(prediction_column="pred"))
    assert [c.name for c in result.columns] == ["x"] and result.share == 0.0
    assert result.prediction is not None and result.prediction.drifted and result.drift
    assert "prediction pred drifted" in result.summary()
    lenient = check(p, cur, DriftConfig(prediction_column="pred", prediction_drift_fails=False))
    assert lenient.prediction is not None and lenient.prediction.drifted and not lenient.drift


# -- statistics against references --------------------------------------------------------------------------------
def test_statistics_match_reference_implementations() -> None:
    rng = np.random.default_rng(24)
    ref = rng.lognormal(size=100_000)
    cur = rng.lognormal(size=20_000) * 1.2
    p = build_profile(pd.DataFrame({"v": ref})).columns["v"]
    s, _, _ = stats.split_finite(cur)
    w1 = stats.wasserstein_to_quantiles(s, p.levels, p.quantiles, p.min, p.max)
    assert w1 == pytest.approx(sps.wasserstein_distance(ref, cur), rel=0.02)  # heavy tail: tail levels matter
    # the integration is exact for any n (a midpoint rule is badly off for a handful of rows): against a dense
    # sample of the profile's own quantile function it agrees to rounding; against the raw data, to the profile's
    # resolution (linear between stored quantiles overstates a convex tail a little)
    u, q = stats.reference_grid(p.levels, p.quantiles, p.min, p.max)
    dense = np.interp((np.arange(1_000_000) + 0.5) / 1_000_000, u, q)
    for n in (1, 3, 40):
        few = np.sort(cur[:n])
        w1_few = stats.wasserstein_to_quantiles(few, p.levels, p.quantiles, p.min, p.max)
        assert w1_few == pytest.approx(sps.wasserstein_distance(dense, few), rel=1e-4)
        assert w1_few == pytest.approx(sps.wasserstein_distance(ref, few), rel=0.05)
    d, _ = stats.ks_against_quantiles(s, p.levels, p.quantiles, p.min, p.max, p.n_valid)
    assert d == pytest.approx(sps.ks_2samp(ref, cur).statistic, abs=0.005)
    a, b = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.5, 0.2])
    from scipy.spatial.distance import jensenshannon

    assert stats.js_distance(a, b) == pytest.approx(float(jensenshannon(a, b)))
    assert stats.psi(a, b) == pytest.approx(float(np.sum((a - b) * np.log(a / b))))
    p_values = [0.01, 0.04, 0.03, 0.2]
    assert stats.adjust_p_values(p_values, "bh") == pytest.approx([0.04, 0.0533333, 0.0533333, 0.2])
    assert stats.adjust_p_values(p_values, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])


# -- config -----------------------------------------------------------------------------------------------------
def test_config_from_policy_mapping_with_per_model_overrides() -> None:
    data = {
        "numeric_method": "psi",
        "thresholds": {"psi": 0.2},
        "drift_share": 0.3,
        "exclude": ["id", "ts"],
        "columns": {"age": {"method": "wasserstein", "threshold": 0.15, "weight": 2}},
        "models": {"churn": {"thresholds": {"psi": 0.25}, "columns": {"income": {"threshold": 0.3}}, "alpha": 0.01}},
    }
    base = DriftConfig.from_dict(data)
    assert base.method_for("x", "numeric") == ("psi", 0.2)
    assert base.method_for("age", "numeric") == ("wasserstein", 0.15) and base.weight_for("age") == 2.0
    assert base.exclude == ("id", "ts") and base.drift_share == 0.3
    churn = DriftConfig.from_dict(data, model="churn")
    assert churn.method_for("x", "numeric") == ("psi", 0.25) and churn.alpha == 0.01
    assert churn.method_for("income", "numeric") == ("psi", 0.3) and "age" in churn.columns
    assert DriftConfig.from_dict(data, model="other") == base
    assert DriftConfig.from_dict(None) == DriftConfig()
    assert DriftConfig.from_dict(DriftConfig().to_dict() | {"include": None}) == DriftConfig(
        thresholds=DriftConfig().to_dict()["thresholds"]
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"numeric_method": "ttest"}, r"drift.numeric_method: unknown drift method 'ttest'"),
        ({"categorical_method": "wasserstein"}, r"categorical_method: unknown drift method"),
        ({"thresholds": {"psi": "high"}}, r"drift.thresholds.psi: expected a number"),
        ({"thresholds": {"ks": 2}}, r"thresholds.ks: 2.0 is out of range"),
        ({"columns": {"age": {"treshold": 0.1}}}, r"drift.columns.age: unknown key\(s\) treshold"),
        ({"drift_share": 1.5}, r"drift.drift_share: 1.5 is out of range"),
        ({"correction": "bonferroni"}, r"correction: 'bonferroni' is not one of bh, holm, none"),
        ({"small_n": -1}, r"small_n: expected a whole number"),
        ({"colums": {}}, r"unknown key\(s\) 'colums'"),
        ({"models": {"m": {"models": {}}}}, r"cannot nest"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DriftConfig.from_dict(data, model="m", source="drift")
