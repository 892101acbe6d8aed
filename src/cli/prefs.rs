//! `rlhf-tui prefs`: a run's judgments in and out of the formats other
//! tools use, and what they add up to (counts, training pairs, agreement
//! per criterion).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use crate::prefs::formats::{Format, read_file, to_line};
use crate::prefs::rank::{ranking_pairs, training_pairs};
use crate::prefs::record::{Choice, Judgment, Source, Verdict};
use crate::prefs::stats::agreement;
use crate::prefs::store::{self, Contents, PrefStore};
use crate::prefs::throughput::throughput;
use crate::run::{RunConfig, RunDir};
use crate::trainer::audit::unix_seconds;

#[derive(Debug, clap::Subcommand)]
pub enum PrefsCommand {
    /// Appends the pairs of a TRL or HH-RLHF JSON Lines file (plain or .gz)
    /// to the run's judgments, marked as imported.
    Import {
        file: PathBuf,
        #[command(flatten)]
        run: RunArg,
    },
    /// Writes the run's training pairs (rankings expanded, ties and skips
    /// left out, a person's judgment over the judge's) as JSON Lines.
    Export {
        #[arg(long, value_enum, default_value_t = Format::Trl)]
        format: Format,
        /// Where to write; standard output without it.
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        run: RunArg,
    },
    /// Counts, training pairs and agreement between annotators per criterion.
    Stats {
        #[command(flatten)]
        run: RunArg,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArg {
    /// The run: runs/NAME.
    #[arg(long)]
    run: String,
    /// Where run directories live.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

impl RunArg {
    fn dir(&self, create: bool) -> anyhow::Result<RunDir> {
        let root = self.runs_dir.join(&self.run);
        anyhow::ensure!(
            create || root.is_dir(),
            "{}: no such run; the workbench or `rlhf-tui train --run {}` makes one",
            root.display(),
            self.run
        );
        RunDir::create(&self.runs_dir, &self.run)
    }
}

pub fn run(command: PrefsCommand) -> anyhow::Result<()> {
    match command {
        PrefsCommand::Import { file, run } => import(&file, &run.dir(true)?),
        PrefsCommand::Export { format, out, run } => export(&run.dir(false)?, format, out),
        PrefsCommand::Stats { run } => {
            print!("{}", stats(&run.dir(false)?)?);
            Ok(())
        }
    }
}

/// Reads the run's store, passing its warnings on.
fn load(run: &RunDir) -> anyhow::Result<Contents> {
    let contents = store::load(&run.prefs_path())?;
    for warning in &contents.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(contents)
}

/// The tokenizer of the run's base model (its saved config's, else the
/// built-in world's).
fn base_tokenizer(run: &RunDir) -> anyhow::Result<crate::model::Tokenizer> {
    let saved = run.config_path();
    let mut config = match saved.exists() {
        true => RunConfig::from_file(&saved)?,
        false => RunConfig::default(),
    };
    crate::world::assets::locate_base(&mut config)?;
    Ok(crate::model::hf::load_tokenizer(&config.sft.init)?)
}

fn import(path: &std::path::Path, run: &RunDir) -> anyhow::Result<()> {
    // Judgments are stored as the text the models read: conversational
    // lines are laid out as the run's base model reads them.
    let tokenizer = base_tokenizer(run)?;
    let file = read_file(path, tokenizer.chat())?;
    for e in &file.errors {
        eprintln!("warning: {}", e.skipped(path));
    }
    let existing = load(run)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    // Ids after every id in the run, as the workbench numbers its sets.
    let first = store::last_id(&existing.judgments) + 1;
    let mut store = PrefStore::open(&run.prefs_path())?;
    let time = unix_seconds();
    for (i, pair) in file.pairs.iter().enumerate() {
        store.record(Judgment {
            pair: first + i as u64,
            time,
            prompt: pair.prompt.clone(),
            responses: vec![pair.chosen.clone(), pair.rejected.clone()],
            verdict: Verdict::Choice(Choice::Left),
            criteria: Vec::new(),
            annotator: name.clone(),
            source: Source::Import,
            policy: name.clone(),
            temperatures: Vec::new(),
            chosen: None,
            rejected: None,
        })?;
    }
    println!(
        "imported {} pairs from {} into {} ({} lines skipped)",
        file.pairs.len(),
        path.display(),
        run.prefs_path().display(),
        file.errors.len()
    );
    Ok(())
}

fn export(run: &RunDir, format: Format, out: Option<PathBuf>) -> anyhow::Result<()> {
    let pairs = training_pairs(&load(run)?.judgments);
    let lines: Vec<Result<String, String>> = pairs.iter().map(|p| to_line(p, format)).collect();
    let refused: Vec<&String> = lines.iter().filter_map(|l| l.as_ref().err()).collect();
    if let Some(why) = refused.first() {
        anyhow::bail!(
            "{} of {} pairs cannot be written as {format:?} ({why}); nothing was written",
            refused.len(),
            pairs.len()
        );
    }
    let text: String = lines.into_iter().flatten().map(|l| l + "\n").collect();
    match out {
        Some(path) => {
            crate::fsutil::write_atomic(&path, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            eprintln!("wrote {} pairs to {}", pairs.len(), path.display());
        }
        None => match std::io::stdout().lock().write_all(text.as_bytes()) {
            // A reader such as `head` that stops early is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        },
    }
    Ok(())
}

/// The report `prefs stats` prints.
pub fn stats(run: &RunDir) -> anyhow::Result<String> {
    let contents = load(run)?;
    let judgments = &contents.judgments;
    let mut out = String::new();
    writeln!(
        out,
        "{}: {} judgments, {} retracted, lines skipped: {}",
        run.prefs_path().display(),
        judgments.len(),
        contents.retracted,
        contents.warnings.len()
    )?;
    // Verdicts by source: "human: left 3, tie 1, rankings 2".
    let mut by_source: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut ranked_pairs = 0;
    for j in judgments {
        let kind = match &j.verdict {
            Verdict::Choice(Choice::Left) => "left",
            Verdict::Choice(Choice::Right) => "right",
            Verdict::Choice(Choice::Tie) => "tie",
            Verdict::Choice(Choice::BothBad) => "both bad",
            Verdict::Choice(Choice::Skip) => "skipped",
            Verdict::Ranking(order) => {
                ranked_pairs += ranking_pairs(order).len();
                "rankings"
            }
        };
        let source = format!("{:?}", j.source).to_lowercase();
        *by_source.entry(source).or_default().entry(kind).or_default() += 1;
    }
    for (source, kinds) in &by_source {
        let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "{source}: {}", kinds.join(", "))?;
    }
    if ranked_pairs > 0 {
        writeln!(out, "rankings expand to {ranked_pairs} pairs")?;
    }
    writeln!(out, "training pairs: {}", training_pairs(judgments).len())?;
    for t in throughput(judgments) {
        let timed = match (t.median_seconds, t.per_hour) {
            (Some(median), Some(rate)) => format!("median {median:.1} s a judgment, {rate:.0} an hour"),
            _ => "not timed yet (two judgments within 10 minutes are needed)".into(),
        };
        writeln!(out, "labeling, {}: {} judgments, {timed}", t.annotator, t.judgments)?;
    }
    let rows = agreement(judgments);
    if rows.iter().all(|r| r.shared == 0) {
        writeln!(out, "agreement: no unit was labelled by two annotators yet")?;
    }
    for row in rows.iter().filter(|r| r.shared > 0) {
        let number = |v: Option<f64>| v.map_or("undefined (one label throughout)".into(), |v| format!("{v:.3}"));
        writeln!(
            out,
            "agreement, {}: {} shared units, Krippendorff's α {}",
            row.criterion.name(),
            row.shared,
            number(row.alpha)
        )?;
        for k in &row.kappas {
            writeln!(
                out,
                "  Cohen's κ {} vs {}: {} over {} units",
                k.first,
                k.second,
                number(k.kappa),
                k.units
            )?;
        }
    }
    Ok(out)
}
