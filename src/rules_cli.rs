//! `crowdgrid rules export`: every site's rules in force — its newest version changed through the API, or its
//! file — written back as TOML files, to review or to make them the files again.

use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `crowdgrid rules export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Path of central.toml.
    #[arg(long, default_value = "config/central.toml")]
    pub config: PathBuf,
    /// Directory to write `<site>.rules.toml` into.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `crowdgrid rules export`: every site's rules in force (its newest version, or its file) as TOML files,
/// ready to be `rule_files` again.
pub async fn export(args: ExportArgs) -> ExitCode {
    let loaded = match crate::cli::load_central(&args.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let store = &loaded.config.store;
    let texts = match crate::store::dispatch_db::DispatchDb::open(&store.path, store.dispatch_url.as_deref()).await {
        Ok(db) => crate::central::rulebook::Rulebook::in_force(&loaded.config.rule_files, &db).await,
        Err(e) => Err(e.into()),
    };
    let texts = match texts {
        Ok(t) => t,
        Err(e) => {
            eprintln!("crowdgrid rules export: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("crowdgrid rules export: {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    for s in &loaded.sites {
        let id = &s.config.id;
        match texts.iter().find(|(site, _, _)| site == id) {
            Some((_, toml, version)) => {
                let path = args.out.join(format!("{id}.rules.toml"));
                if let Err(e) = std::fs::write(&path, toml) {
                    eprintln!("crowdgrid rules export: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                let from = version.map_or("its rules file".to_string(), |v| format!("version {v}"));
                println!("{id}: {} ({from})", path.display());
            }
            None => println!("{id}: the default density rule from its zones' thresholds (no file to write)"),
        }
    }
    ExitCode::SUCCESS
}
