//! The integration tests of `deploy`, in one binary (one link of the dependency tree, not one per file).

mod dry_run;
mod template;
