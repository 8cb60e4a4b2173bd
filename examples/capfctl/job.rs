//! `capfctl job list|show|cancel`: the guide's Manage Scheduled Jobs, over capf-admin's `jobs`
//! (the jobs `bulk ... --at TIME` stores and the built-in monitor; the running capfd runs them).

use std::time::SystemTime;

use anyhow::Result;
use capf_admin::jobs::JobView;
use capf_store::{Job, JobState};
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::device::DataArgs;
use crate::print_json;

fn state() -> impl TypedValueParser<Value = JobState> {
    PossibleValuesParser::new(JobState::ALL.map(JobState::as_str))
        .try_map(|s| s.parse::<JobState>())
}

/// The job verbs.
#[derive(clap::Subcommand)]
pub(crate) enum JobCommand {
    /// List the jobs, with their state and result.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Only the jobs in this state.
        #[arg(long, value_parser = state())]
        state: Option<JobState>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: its state and result (devices changed, errors, why it failed).
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// The job's number.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a scheduled job: it will never run.
    Cancel {
        #[command(flatten)]
        data: DataArgs,
        /// The job's number.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn line(job: &Job) -> String {
    let view = JobView::from(job);
    let mut text = format!(
        "job {}  {}  {}  due {}  {}",
        view.id, view.state, view.kind, view.due, view.description
    );
    if let Some(changed) = view.devices_changed {
        text.push_str(&format!(
            "; {changed} devices changed, {} errors",
            view.errors.len()
        ));
    }
    if let Some(failure) = &view.failure {
        text.push_str(&format!("; failed: {failure}"));
    }
    text
}

/// What `bulk ... --at` prints once its job is stored.
pub(crate) fn print_scheduled(job: &Job, json: bool) -> Result<()> {
    if json {
        return print_json(&JobView::from(job));
    }
    outln!(
        "scheduled job {} for {}: {}",
        job.id,
        capf_admin::rfc3339(job.due),
        job.description
    );
    Ok(())
}

pub(crate) fn run(cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::List { data, state, json } => {
            let store = data.open_existing()?;
            let jobs = capf_admin::jobs::list_jobs(&*store, state)?;
            if json {
                let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
                return print_json(&views);
            }
            if jobs.is_empty() {
                outln!("no jobs");
            }
            for job in &jobs {
                outln!("{}", line(job));
            }
            Ok(())
        }
        JobCommand::Show { data, id, json } => {
            let store = data.open_existing()?;
            let job = capf_admin::jobs::job(&*store, id)?;
            if json {
                return print_json(&JobView::from(&job));
            }
            outln!("{}", line(&job));
            let view = JobView::from(&job);
            if let Some(node) = &view.node {
                outln!(
                    "  ran on {node} from {} to {}",
                    view.started_at.as_deref().unwrap_or("-"),
                    view.finished_at.as_deref().unwrap_or("-")
                );
            }
            for error in &view.errors {
                outln!("  error: {error}");
            }
            Ok(())
        }
        JobCommand::Cancel { data, id, json } => {
            let store = data.open_existing()?;
            let job = capf_admin::jobs::cancel_job(&*store, id, SystemTime::now())?;
            if json {
                return print_json(&JobView::from(&job));
            }
            outln!("cancelled job {}: {}", job.id, job.description);
            Ok(())
        }
    }
}
