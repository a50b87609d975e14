//! `crowdgrid sim-city`: writes a generated city as site files and a `central.toml` that runs it on the embedded
//! defaults (`crowdgrid central --config <out>/central.toml`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::gen::{generate, CitySize};

/// Options of `crowdgrid sim-city`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimCityArgs {
    /// Directory to write `central.toml` and `sites/*.toml` into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Sub-districts (one site each).
    #[arg(long, default_value_t = CitySize::CHANGZHOU.subdistricts)]
    pub subdistricts: usize,
    /// Grids, spread evenly over the sub-districts.
    #[arg(long, default_value_t = CitySize::CHANGZHOU.grids)]
    pub grids: usize,
    /// Zones, spread evenly over the grids.
    #[arg(long, default_value_t = CitySize::CHANGZHOU.zones)]
    pub zones: usize,
    /// Seed of the layout's random choices (grid kinds, names).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The API's listen address in the written central.toml.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub api_listen: String,
    /// The embedded broker's listen address in the written central.toml.
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub mqtt_listen: String,
}

/// The `central.toml` of a generated city: embedded broker and SQLite beside it, the sites, the default rules.
pub fn central_toml(site_files: &[String], api_listen: &str, mqtt_listen: &str) -> String {
    let sites = site_files.iter().map(|f| format!("  {f:?},")).collect::<Vec<_>>().join("\n");
    format!(
        "# A generated city (crowdgrid sim-city); every site gets a density rule from its zones' thresholds.\n\
         sites = [\n{sites}\n]\n\n[broker]\nmode = \"embedded\"\nlisten = \"{mqtt_listen}\"\n\n\
         [store]\npath = \"city.db\"\nretention_days = 7\n\n[api]\nlisten = \"{api_listen}\"\n"
    )
}

/// Writes the city; returns the number of sites, grids and zones written.
pub fn write(args: &SimCityArgs) -> Result<(usize, usize, usize), String> {
    let size = CitySize { subdistricts: args.subdistricts, grids: args.grids, zones: args.zones, seed: args.seed };
    let problems = size.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let dir = args.out.join("sites");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sites = generate(size);
    let mut files = Vec::with_capacity(sites.len());
    for s in &sites {
        let text = toml::to_string(s).map_err(|e| format!("{}: {e}", s.id))?;
        let name = format!("sites/{}.toml", s.id);
        write_file(&args.out.join(&name), &text)?;
        files.push(name);
    }
    write_file(&args.out.join("central.toml"), &central_toml(&files, &args.api_listen, &args.mqtt_listen))?;
    Ok((sites.len(), size.grids, size.zones))
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `crowdgrid sim-city`.
pub fn run(args: &SimCityArgs) -> ExitCode {
    match write(args) {
        Ok((sites, grids, zones)) => {
            println!(
                "wrote {sites} sites, {grids} grids, {zones} zones to {}; run it with: crowdgrid central --config {c}, \
                 and play its edges with: crowdgrid sim-load --config {c}",
                args.out.display(),
                c = args.out.join("central.toml").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sim-city: {e}");
            ExitCode::from(crate::cli::EXIT_CONFIG)
        }
    }
}
