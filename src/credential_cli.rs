//! `crowdgrid edge-credential`: issue, list and revoke edge credentials (see `auth::edge_credentials`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::auth::edge_credentials::EdgeCredentials;
use crate::central::config::CentralConfig;

/// `crowdgrid edge-credential …`
#[derive(Args, Debug)]
pub struct CredentialArgs {
    #[command(subcommand)]
    command: CredentialCommand,
}

#[derive(Subcommand, Debug)]
enum CredentialCommand {
    /// Issue the next credential of an edge and print it (shown once; earlier ones stay valid until revoked).
    Create {
        /// Path of central.toml (database, master key, sites).
        #[arg(long, default_value = "config/central.toml")]
        config: PathBuf,
        /// Site id.
        #[arg(long)]
        site: String,
        /// Edge id.
        #[arg(long)]
        edge: String,
        /// Write it to this file (owner-only) for the edge's `[mqtt] credential_file` instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke one credential (`--kid`) or all of an edge's; the centre refuses it within `[edges] refresh_s`.
    Revoke {
        /// Path of central.toml.
        #[arg(long, default_value = "config/central.toml")]
        config: PathBuf,
        /// Site id.
        #[arg(long)]
        site: String,
        /// Edge id.
        #[arg(long)]
        edge: String,
        /// Only this credential number.
        #[arg(long)]
        kid: Option<u32>,
    },
    /// List credentials (fingerprints, never the secrets).
    List {
        /// Path of central.toml.
        #[arg(long, default_value = "config/central.toml")]
        config: PathBuf,
    },
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("crowdgrid edge-credential: {e}");
    ExitCode::FAILURE
}

/// `crowdgrid broker-acl`: Mosquitto's `password_file` and `acl_file` from the centre's identities.
#[derive(Args, Debug)]
pub struct BrokerAclArgs {
    /// Path of central.toml (database, master key, sites and rosters, topic prefix).
    #[arg(long, default_value = "config/central.toml")]
    config: PathBuf,
    /// Directory to write `password_file`, `acl_file` and `workers/{site}.{worker}.password` into.
    #[arg(long)]
    out: PathBuf,
}

/// Writes the Mosquitto files (see `auth::mosquitto`).
pub async fn broker_acl(args: BrokerAclArgs) -> ExitCode {
    use crate::auth::mosquitto::{acl_file, password_line, Account};
    let loaded = match CentralConfig::load(&args.config) {
        Ok(l) => l,
        Err(e) => return crate::cli::config_error(&e),
    };
    let c = &loaded.config;
    let store = match crate::store::dispatch_db::DispatchDb::open(&c.store.path, c.store.dispatch_url.as_deref()).await
    {
        Ok(db) => match db.edge_credentials(&c.edges.key_path(&c.store.path)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    let records = match store.list().await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Each edge logs in with its newest credential in force (Mosquitto keeps one password per user).
    let mut newest: std::collections::BTreeMap<(String, String), u32> = std::collections::BTreeMap::new();
    for r in records.iter().filter(|r| r.revoked_at.is_none()) {
        let k = newest.entry((r.site.clone(), r.edge.clone())).or_insert(r.kid);
        *k = (*k).max(r.kid);
    }
    let mut accounts = vec![(Account::Centre, store.centre_password())];
    for ((site, edge), kid) in &newest {
        let secret = store.derive(site, edge, *kid).secret;
        accounts.push((Account::Edge { site: site.clone(), edge: edge.clone() }, secret));
    }
    let workers_dir = args.out.join("workers");
    if let Err(e) = std::fs::create_dir_all(&workers_dir) {
        return fail(format!("{}: {e}", workers_dir.display()));
    }
    for site in &loaded.sites {
        for w in &site.config.workers {
            let secret = store.worker_password(&site.config.id, &w.id);
            let file = workers_dir.join(format!("{}.{}.password", site.config.id, w.id));
            if let Err(e) = write_secret(&file, &secret) {
                return fail(format!("{}: {e}", file.display()));
            }
            accounts.push((Account::Worker { site: site.config.id.clone(), worker: w.id.clone() }, secret));
        }
    }
    let passwords: String = accounts.iter().map(|(a, p)| password_line(&a.user(), p) + "\n").collect();
    let acl = acl_file(c.broker.topic_prefix(), &accounts.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>());
    let (pw_path, acl_path) = (args.out.join("password_file"), args.out.join("acl_file"));
    if let Err(e) = write_secret(&pw_path, passwords.trim_end()) {
        return fail(format!("{}: {e}", pw_path.display()));
    }
    if let Err(e) = std::fs::write(&acl_path, acl) {
        return fail(format!("{}: {e}", acl_path.display()));
    }
    println!("# mosquitto.conf (then `kill -HUP` Mosquitto after every regeneration)");
    println!("allow_anonymous false\npassword_file {}\nacl_file {}", pw_path.display(), acl_path.display());
    eprintln!(
        "{} accounts: the centre, {} edges, {} workers (their passwords in {})",
        accounts.len(),
        newest.len(),
        accounts.len() - 1 - newest.len(),
        workers_dir.display()
    );
    ExitCode::SUCCESS
}

/// Writes `secret` to `path`, readable by its owner only.
pub fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(format!("{secret}\n").as_bytes())?;
    f.sync_all()
}

/// Runs the subcommand.
pub async fn run(args: CredentialArgs) -> ExitCode {
    let config = match &args.command {
        CredentialCommand::Create { config, .. }
        | CredentialCommand::Revoke { config, .. }
        | CredentialCommand::List { config } => config.clone(),
    };
    let loaded = match CentralConfig::load(&config) {
        Ok(l) => l,
        Err(e) => return crate::cli::config_error(&e),
    };
    let c = &loaded.config;
    let store: EdgeCredentials =
        match crate::store::dispatch_db::DispatchDb::open(&c.store.path, c.store.dispatch_url.as_deref()).await {
            Ok(db) => match db.edge_credentials(&c.edges.key_path(&c.store.path)) {
                Ok(s) => s,
                Err(e) => return fail(e),
            },
            Err(e) => return fail(e),
        };
    match args.command {
        CredentialCommand::Create { site, edge, out, .. } => {
            if !loaded.sites.iter().any(|s| s.config.id == site) {
                eprintln!("Invalid configuration: no site {site:?} in {}", config.display());
                return ExitCode::from(crate::cli::EXIT_CONFIG);
            }
            let cred = match store.create(&site, &edge).await {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            match out {
                Some(path) => match write_secret(&path, &cred.secret) {
                    Ok(()) => {
                        eprintln!("credential {} of {site}/{edge} written to {}", cred.kid, path.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("{}: {e}", path.display())),
                },
                None => {
                    println!("{}", cred.secret);
                    ExitCode::SUCCESS
                }
            }
        }
        CredentialCommand::Revoke { site, edge, kid, .. } => match store.revoke(&site, &edge, kid).await {
            Ok(0) => fail(format!("no credential in force for {site}/{edge}")),
            Ok(n) => {
                eprintln!("revoked {n} credential(s) of {site}/{edge}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        CredentialCommand::List { .. } => match store.list().await {
            Ok(list) => {
                for r in list {
                    let state = if r.revoked_at.is_some() { "revoked" } else { "active" };
                    println!("{:<16} {:<28} {:>4}  {}  {state}", r.site, r.edge, r.kid, r.fingerprint);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}
