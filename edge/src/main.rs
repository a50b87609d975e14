//! `crowdgrid-edge`: the edge agent on its own, for the boxes at base stations, gates and cameras. It carries
//! no broker, no web app, no database client and no Prometheus; built without the default `vision` feature it
//! carries neither OpenCV nor ONNX Runtime either (a gate or base-station box), and a camera source in its file is
//! refused with that reason. Packaged as a .deb with a systemd unit (scripts/package.sh, docs/DEPLOY.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use crowdgrid_edge::agent::Agent;
use crowdgrid_edge::config::EdgeConfig;
use crowdgrid_proto::config::EXIT_CONFIG;

#[derive(Parser)]
#[command(name = "crowdgrid-edge", version, about = "crowdgrid edge agent: sources → readings over MQTT")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGINT or SIGTERM, then drain the sources into the queue.
    Run {
        /// The edge file (e.g. /etc/crowdgrid/edge.toml).
        #[arg(long, env = "CROWDGRID_EDGE_CONFIG")]
        config: PathBuf,
        /// Broker port instead of the file's.
        #[arg(long)]
        mqtt_port: Option<u16>,
    },
    /// Check edge files (every problem at once); exit 64 if one is invalid.
    CheckConfig {
        /// Edge files.
        paths: Vec<PathBuf>,
    },
    /// What this build can run.
    Features,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. }) {
        crowdgrid_edge::memory::tune_allocator();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttc=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    match cli.command {
        Command::Features => {
            println!("vision: {}", if cfg!(feature = "vision") { "yes (cameras, drones)" } else { "no" });
            ExitCode::SUCCESS
        }
        Command::CheckConfig { paths } => {
            let check = |p: &std::path::Path| {
                let loaded = EdgeConfig::load(p)?;
                for (_, note) in loaded.config.notes(&loaded.site) {
                    eprintln!("note: {note}");
                }
                Ok(format!("edge {}", loaded.config.edge.id))
            };
            if crowdgrid_proto::config::check_files(&paths, check) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CONFIG)
            }
        }
        Command::Run { config, mqtt_port } => {
            let mut loaded = match EdgeConfig::load(&config) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("Invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if let Some(p) = mqtt_port {
                loaded.config.mqtt.port = p;
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(Agent::run_until_signal(loaded)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("crowdgrid-edge: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
