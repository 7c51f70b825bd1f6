//! The judge against committed oracle cases: scipy's `mannwhitneyu` with brute-force
//! Hodges-Lehmann (written by `oracle/generate.py`) and R's `wilcox.test(conf.int = TRUE)`.

use fife_judge::{
    Classification, DecisionRule, Direction, JudgeConfig, Method, NanPolicy, OutlierPolicy, Scale,
    Test, judge,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaseConfig {
    confidence: f64,
    direction: Direction,
    allowed_increase: f64,
    allowed_decrease: f64,
    rule: DecisionRule,
    nan_policy: NanPolicy,
    outlier_factor: Option<f64>,
}

impl CaseConfig {
    fn judge_config(&self) -> JudgeConfig {
        JudgeConfig {
            confidence: self.confidence,
            direction: self.direction,
            allowed_increase: self.allowed_increase,
            allowed_decrease: self.allowed_decrease,
            rule: self.rule,
            nan_policy: self.nan_policy,
            outlier_policy: match self.outlier_factor {
                Some(factor) => OutlierPolicy::RemoveIqr { factor },
                None => OutlierPolicy::Keep,
            },
            test: Test::MannWhitney,
            scale: Scale::Auto,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Expected {
    n_canary: usize,
    n_baseline: usize,
    classification: Classification,
    u: Option<f64>,
    p_value: Option<f64>,
    method: Option<Method>,
    shift: Option<f64>,
    ci: Option<[f64; 2]>,
    effect_size: Option<f64>,
    cles: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct ScipyCase {
    name: String,
    canary: Vec<Option<f64>>,
    baseline: Vec<Option<f64>>,
    config: CaseConfig,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
struct RAnswer {
    p_value: f64,
    estimate: f64,
    ci: [f64; 2],
}

#[derive(Debug, Deserialize)]
struct RCase {
    name: String,
    canary: Vec<f64>,
    baseline: Vec<f64>,
    config: CaseConfig,
    exact: bool,
    r: RAnswer,
}

/// JSON has no NaN: the generator writes it as null.
fn values(raw: &[Option<f64>]) -> Vec<f64> {
    raw.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

fn assert_close(case: &str, what: &str, got: f64, want: f64, relative: f64) {
    let scale = want.abs().max(f64::MIN_POSITIVE);
    assert!(
        got == want || (got - want).abs() <= relative * scale,
        "{case}: {what} = {got:e}, expected {want:e} (relative {:e})",
        (got - want).abs() / scale
    );
}

#[test]
fn agrees_with_scipy_and_brute_force_to_1e_9() {
    let cases: Vec<ScipyCase> =
        serde_json::from_str(include_str!("oracle/scipy_cases.json")).expect("valid oracle JSON");
    assert!(cases.len() >= 30, "oracle has {} cases", cases.len());
    for case in &cases {
        let j = judge(
            &values(&case.canary),
            &values(&case.baseline),
            &case.config.judge_config(),
        );
        let e = &case.expected;
        let name = case.name.as_str();
        assert_eq!(
            (j.n_canary, j.n_baseline),
            (e.n_canary, e.n_baseline),
            "{name}: sizes"
        );
        assert_eq!(j.classification, e.classification, "{name}: {}", j.reason);
        if e.classification == Classification::NoData {
            continue;
        }
        assert_eq!(Some(j.method), e.method, "{name}: method");
        assert_close(name, "u", j.u, e.u.unwrap(), 1e-9);
        assert_close(name, "p_value", j.p_value, e.p_value.unwrap(), 1e-9);
        assert_close(name, "shift", j.shift, e.shift.unwrap(), 1e-9);
        let ci = e.ci.unwrap();
        assert_close(name, "ci lo", j.ci[0], ci[0], 1e-9);
        assert_close(name, "ci hi", j.ci[1], ci[1], 1e-9);
        assert_close(name, "cles", j.cles, e.cles.unwrap(), 1e-9);
        match (j.effect_size, e.effect_size) {
            (Some(got), Some(want)) => assert_close(name, "effect_size", got, want, 1e-9),
            (got, want) => assert_eq!(got, want, "{name}: effect_size"),
        }
    }
}

#[test]
fn agrees_with_r_wilcox_test() {
    let cases: Vec<RCase> =
        serde_json::from_str(include_str!("oracle/r_cases.json")).expect("valid R JSON");
    assert!(!cases.is_empty());
    for case in &cases {
        let j = judge(&case.canary, &case.baseline, &case.config.judge_config());
        let name = case.name.as_str();
        assert_close(name, "p_value", j.p_value, case.r.p_value, 1e-9);
        if case.exact {
            assert_eq!(j.method, Method::Exact, "{name}");
            // R's exact interval and estimate are order statistics of the differences.
            assert_close(name, "shift", j.shift, case.r.estimate, 1e-12);
            assert_close(name, "ci lo", j.ci[0], case.r.ci[0], 1e-12);
            assert_close(name, "ci hi", j.ci[1], case.r.ci[1], 1e-12);
        } else {
            // R finds the asymptotic estimate and bounds with uniroot (tol 1e-4) on a step
            // function; ours are the exact order statistics it approximates.
            let width = case.r.ci[1] - case.r.ci[0];
            for (what, got, want) in [
                ("shift", j.shift, case.r.estimate),
                ("ci lo", j.ci[0], case.r.ci[0]),
                ("ci hi", j.ci[1], case.r.ci[1]),
            ] {
                assert!(
                    (got - want).abs() <= 1e-3 * width,
                    "{name}: {what} = {got}, R says {want} (interval width {width})"
                );
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct TCases {
    quantiles: Vec<TQuantile>,
    upper_tail: Vec<TUpperTail>,
}

#[derive(Debug, Deserialize)]
struct TQuantile {
    df: f64,
    p: f64,
    x: f64,
}

#[derive(Debug, Deserialize)]
struct TUpperTail {
    df: f64,
    x: f64,
    sf: f64,
}

fn t_cases() -> TCases {
    serde_json::from_str(include_str!("oracle/t_cases.json")).expect("t_cases.json parses")
}

#[test]
fn student_t_quantiles_match_scipy() {
    for case in t_cases().quantiles {
        let x = fife_judge::student_t::quantile(case.p, case.df);
        let tolerance = 1e-9 * case.x.abs().max(1.0);
        assert!(
            (x - case.x).abs() <= tolerance,
            "t quantile p={} df={}: {x} vs scipy {}",
            case.p,
            case.df,
            case.x
        );
    }
}

#[test]
fn student_t_upper_tails_match_scipy() {
    for case in t_cases().upper_tail {
        let sf = fife_judge::student_t::upper_tail(case.x, case.df);
        assert!(
            (sf - case.sf).abs() <= 1e-9 * case.sf.max(1e-300) + 1e-15,
            "t upper tail x={} df={}: {sf} vs scipy {}",
            case.x,
            case.df,
            case.sf
        );
    }
}

// === the counts test against scipy's pieces (oracle/generate_counts.py) ===

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountsCase {
    name: String,
    direction: Direction,
    points: usize,
    canary: Vec<(f64, f64)>,
    baseline: Vec<(f64, f64)>,
    stable: Vec<(f64, f64)>,
    dispersion: f64,
    df: u32,
    p_value: f64,
}

/// One side from (errors, requests) per pod, held at each of `points` timestamps.
fn counter_side(pods: &[(f64, f64)], points: usize) -> fife_judge::CounterSeries {
    let mut side = fife_judge::CounterSeries::default();
    for (i, &(errors, requests)) in pods.iter().enumerate() {
        let name = format!("{{pod=\"p{i}\"}}");
        let at = |v: f64| (0..points).map(move |k| (1_700_000_000_000 + k as i64 * 15_000, v));
        side.errors
            .push(fife_judge::PodSeries::new(name.clone(), at(errors)));
        side.requests
            .push(fife_judge::PodSeries::new(name, at(requests)));
    }
    side
}

#[test]
fn counts_test_agrees_with_scipy_pieces() {
    let cases: Vec<CountsCase> = serde_json::from_str(include_str!("oracle/counts_cases.json"))
        .expect("counts_cases.json parses");
    for case in cases {
        let config = JudgeConfig {
            direction: case.direction,
            ..JudgeConfig::default()
        };
        let j = fife_judge::judge_counts(
            &counter_side(&case.canary, case.points),
            &counter_side(&case.baseline, case.points),
            &counter_side(&case.stable, case.points),
            fife_judge::Look::SINGLE,
            &config,
        );
        assert_eq!(j.df, case.df, "{}: df", case.name);
        assert_close(
            &case.name,
            "dispersion",
            j.dispersion,
            case.dispersion,
            1e-9,
        );
        assert_close(&case.name, "p-value", j.p_value, case.p_value, 1e-9);
    }
}
