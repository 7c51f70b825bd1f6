//! `fife judge`: runs the statistical judge on two files of samples (or on a live
//! Prometheus, see `judge_live`) and prints the judgement as JSON or as text. Exit code 0
//! when a judgement was made (whatever it says), 2 when the input, the source or the flags
//! are unusable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use fife_judge::{
    CleanSample, DecisionRule, Direction, JudgeConfig, Judgement, Method, NanPolicy, OutlierPolicy,
    Scale, Test, judge_clean,
};

use crate::judge_live::LiveSource;
use crate::sample_file::{SampleFileError, read_samples};

/// Exit code for unusable input or flags (the same clap uses for usage errors).
const EXIT_BAD_INPUT: u8 = 2;

/// Compare canary samples against baseline samples with a Mann-Whitney U test.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// File of canary samples: one number per line; blank lines ignored, NaN accepted.
    #[arg(long, value_name = "FILE", required_unless_present = "prometheus")]
    canary: Option<PathBuf>,
    /// File of baseline samples, same format.
    #[arg(long, value_name = "FILE", required_unless_present = "prometheus")]
    baseline: Option<PathBuf>,
    #[command(flatten)]
    live: LiveSource,
    /// Confidence of the test and the interval, strictly between 0 and 1.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Which change of the canary fails.
    #[arg(long, value_enum, default_value_t = DirectionArg::Either)]
    direction: DirectionArg,
    /// A higher canary fails only when mean(canary)/mean(baseline) ≥ this ratio.
    #[arg(long, default_value_t = 1.0, value_name = "RATIO")]
    allowed_increase: f64,
    /// A lower canary fails only when mean(canary)/mean(baseline) ≤ this ratio.
    #[arg(long, default_value_t = 1.0, value_name = "RATIO")]
    allowed_decrease: f64,
    /// Decision rule: significance (p-value) or kayenta (interval clear of zero).
    #[arg(long, value_enum, default_value_t = RuleArg::Significance)]
    rule: RuleArg,
    /// What to do with NaN (and infinite) samples.
    #[arg(long = "nan", value_enum, default_value_t = NanArg::Remove)]
    nan: NanArg,
    /// Keep every sample, or remove those outside the IQR fence.
    #[arg(long, value_enum, default_value_t = OutliersArg::Keep)]
    outliers: OutliersArg,
    /// Fence factor for `--outliers remove`: [Q1 − F·IQR, Q3 + F·IQR].
    #[arg(long, default_value_t = 1.5, value_name = "F")]
    iqr_factor: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputArg::Text)]
    output: OutputArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DirectionArg {
    Increase,
    Decrease,
    Either,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuleArg {
    Significance,
    Kayenta,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NanArg {
    Remove,
    Replace,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutliersArg {
    Keep,
    Remove,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputArg {
    Json,
    Text,
}

impl JudgeArgs {
    fn config(&self) -> JudgeConfig {
        JudgeConfig {
            // Plain files carry no pod identity: `fife judge` runs the pooled test.
            test: Test::MannWhitney,
            scale: Scale::Auto,
            confidence: self.confidence,
            direction: match self.direction {
                DirectionArg::Increase => Direction::Increase,
                DirectionArg::Decrease => Direction::Decrease,
                DirectionArg::Either => Direction::Either,
            },
            allowed_increase: self.allowed_increase,
            allowed_decrease: self.allowed_decrease,
            rule: match self.rule {
                RuleArg::Significance => DecisionRule::Significance,
                RuleArg::Kayenta => DecisionRule::Kayenta,
            },
            nan_policy: match self.nan {
                NanArg::Remove => NanPolicy::Remove,
                NanArg::Replace => NanPolicy::ReplaceWithZero,
            },
            outlier_policy: match self.outliers {
                OutliersArg::Keep => OutlierPolicy::Keep,
                OutliersArg::Remove => OutlierPolicy::RemoveIqr {
                    factor: self.iqr_factor,
                },
            },
        }
    }
}

/// Both sample files, each read, cleaned and sorted on a thread of its own; clap makes
/// sure they were given when --prometheus was not.
fn read_sample_files(
    args: &JudgeArgs,
    config: &JudgeConfig,
) -> Result<(CleanSample, CleanSample), SampleFileError> {
    let (Some(canary), Some(baseline)) = (&args.canary, &args.baseline) else {
        unreachable!("clap requires --canary and --baseline without --prometheus")
    };
    let prepare = |path: &Path| read_samples(path).map(|raw| CleanSample::new(raw, config));
    let (canary, baseline) = std::thread::scope(|scope| {
        let canary = scope.spawn(|| prepare(canary));
        let baseline = prepare(baseline);
        (
            canary.join().expect("reading samples does not panic"),
            baseline,
        )
    });
    Ok((canary?, baseline?))
}

pub fn run(args: JudgeArgs) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let samples = match args.live.fetch_if_requested() {
        Some(fetched) => fetched.map(|(canary, baseline)| {
            (
                CleanSample::new(canary, &config),
                CleanSample::new(baseline, &config),
            )
        }),
        None => read_sample_files(&args, &config).map_err(|e| e.to_string()),
    };
    let (canary, baseline) = match samples {
        Ok(samples) => samples,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let judgement = judge_clean(&canary, &baseline, &config);
    match args.output {
        OutputArg::Json => println!(
            "{}",
            serde_json::to_string(&judgement).expect("a judgement always serialises")
        ),
        OutputArg::Text => print!("{}", text(&judgement, &config)),
    }
    ExitCode::SUCCESS
}

/// The same facts as the JSON, laid out for a terminal.
fn text(j: &Judgement, config: &JudgeConfig) -> String {
    let method = match j.method {
        Method::Exact => "exact",
        Method::Asymptotic => "normal approximation",
    };
    let ratio = j
        .effect_size
        .map_or_else(|| "undefined (a mean is 0)".to_string(), figures);
    format!(
        "{:?}: {}\n\
         \x20 samples      canary {}, baseline {}\n\
         \x20 U            {} (P(canary > baseline) + ½·P(tie) = {})\n\
         \x20 p-value      {} ({method}, two-sided)\n\
         \x20 shift        {} ({}% CI {} to {})\n\
         \x20 mean ratio   {ratio}\n",
        j.classification,
        j.reason,
        j.n_canary,
        j.n_baseline,
        figures(j.u),
        figures(j.cles),
        figures(j.p_value),
        figures(j.shift),
        figures(config.confidence * 100.0),
        figures(j.ci[0]),
        figures(j.ci[1]),
    )
}

/// Six significant figures without trailing zeros; scientific outside [1e-4, 1e12).
fn figures(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    if !(1e-4..1e12).contains(&x.abs()) {
        return format!("{x:.5e}");
    }
    let decimals = (5 - x.abs().log10().floor() as i32).max(0) as usize;
    let fixed = format!("{x:.decimals$}");
    if fixed.contains('.') {
        fixed
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_away_float_noise() {
        assert_eq!(figures(22.69999999999999), "22.7");
        assert_eq!(figures(-1.5), "-1.5");
        assert_eq!(figures(7894.5), "7894.5");
        assert_eq!(figures(1.3e-12), "1.30000e-12");
        assert_eq!(figures(0.0009503807898), "0.000950381");
    }
}
