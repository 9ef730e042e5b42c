//! The pipeline bundle: `pipeline.toml` and the step scripts, at their pipeline-relative paths.
//! It is zipped next to each Lambda's `bootstrap` (so `BOA_PIPELINE_FILE=/var/task/pipeline.toml`
//! and `Pipeline::load` finds the scripts it checks) and uploaded as the workers' `BOA_SCRIPTS`.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use boa_core::{Pipeline, PipelineError};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Pipeline(#[from] PipelineError),
    #[error(
        "step {step}: script path '{path}' leaves the pipeline's folder; use a path relative to the folder of pipeline.toml, without '..'"
    )]
    OutsidePipeline { step: String, path: String },
    #[error("cannot copy {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

/// Copies `pipeline` (as `pipeline.toml`) and every script its steps name into `out`. A script in
/// a folder brings its whole top-level folder (helpers it sources come along). Returns the
/// top-level entries of `out`, sorted (what to pass to `cargo lambda build --include`).
pub fn bundle(pipeline: &Path, out: &Path) -> Result<Vec<String>, BundleError> {
    let p = Pipeline::load(pipeline)?;
    let base = pipeline.parent().unwrap_or(Path::new("."));
    let mut tops: BTreeSet<String> = BTreeSet::new();
    for s in &p.steps {
        for path in [
            Some(&s.script),
            s.init_script.as_ref(),
            s.after_script.as_ref(),
            s.cleanup_script.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            let rel = Path::new(path);
            let first = rel.components().next();
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(BundleError::OutsidePipeline {
                    step: s.name.clone(),
                    path: path.clone(),
                });
            }
            if let Some(Component::Normal(top)) = first {
                tops.insert(top.to_string_lossy().into_owned());
            }
        }
    }
    let copy_err = |from: &Path, to: &Path, source| BundleError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| copy_err(pipeline, out, e))?;
    let dest = out.join("pipeline.toml");
    std::fs::copy(pipeline, &dest).map_err(|e| copy_err(pipeline, &dest, e))?;
    for t in &tops {
        copy_tree(&base.join(t), &out.join(t)).map_err(|(f, d, e)| copy_err(&f, &d, e))?;
    }
    let mut entries: BTreeSet<String> = tops;
    entries.insert("pipeline.toml".into());
    Ok(entries.into_iter().collect())
}

type CopyFailure = (PathBuf, PathBuf, std::io::Error);

fn copy_tree(from: &Path, to: &Path) -> Result<(), CopyFailure> {
    let fail = |e| (from.to_path_buf(), to.to_path_buf(), e);
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(fail)?;
        let mut names: Vec<_> = std::fs::read_dir(from)
            .map_err(fail)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            copy_tree(&from.join(&n), &to.join(&n))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ()).map_err(fail)
    }
}
