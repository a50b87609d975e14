//! A camera edge for the evidence, settings and geometry tests: frame 300 of vtest.avi in a looping folder, the
//! shipped model, two image zones of Boai school (`gate-plaza`, `pickup-lane`), and `extra` TOML appended to the
//! camera's source (e.g. `evidence` or a `[sources.tracking]` section). With a centre API, the edge takes settings
//! from it and signs with `{edge}.cred` beside the file.

use std::path::{Path, PathBuf};

use crowdgrid::auth::edge_credentials::{Authentication, EdgeCredentials};

use super::{edge_file_for, root};

/// The edge file of camera `gate-cam` on edge `edge` (broker on `port`, centre API at `api` if any).
pub fn camera_edge(dir: &Path, edge: &str, port: u16, api: Option<&str>, extra: &str) -> PathBuf {
    let frames = dir.join(format!("{edge}-frames"));
    std::fs::create_dir_all(&frames).unwrap();
    // Frame 300 of vtest.avi: six people the shipped model finds at 0.45, a van and a car.
    std::fs::copy(root().join("tests/data/vision/vtest_300.jpg"), frames.join("a.jpg")).unwrap();
    let tuning = api.map(|a| format!("[tuning]\ncentre_api = \"{a}\"\n")).unwrap_or_default();
    let camera = format!(
        r#"
{tuning}
[[sources]]
type = "camera"
id = "gate-cam"
video = {{ kind = "folder", dir = "{frames}", loop = true }}
model = {{ manifest = "{manifest}", threads = 2 }}
max_fps = 5.0
smoothing_frames = 1
report_interval_ms = 300
calibration = {{ image = [[0, 576], [768, 576], [700, 180], [60, 180]], ground = [[0, 0], [22, 0], [30, 35], [-8, 35]] }}
zones = [
  {{ zone = "gate-plaza", polygon = [[0, 140], [560, 110], [560, 260], [768, 300], [768, 576], [0, 576]] }},
  {{ zone = "pickup-lane", polygon = [[560, 110], [768, 100], [768, 300], [560, 260]] }},
]
{extra}
"#,
        frames = frames.display(),
        manifest = root().join("models/manifest.toml").display(),
    );
    let path = edge_file_for(dir, "boai-school", edge, port, "crowdgrid/v1", &camera);
    if api.is_some() {
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[mqtt]\n", &format!("[mqtt]\ncredential_file = \"{edge}.cred\"\n"));
        std::fs::write(&path, text).unwrap();
    }
    path
}

/// A centre as shipped (`[edges] authentication = "required"`), changed by `tweak`, with a credential for `edge`
/// of Boai school written to `{edge}.cred` in `dir` (where [`camera_edge`] points the edge): the running centre,
/// its database, the credentials (to issue others) and the edge's own.
pub async fn signed_centre(
    dir: &Path,
    edge: &str,
    tweak: impl FnOnce(&mut crowdgrid::central::config::LoadedCentral),
) -> (crowdgrid::central::Central, PathBuf, EdgeCredentials, crowdgrid_proto::signed::Credential) {
    let mut loaded = super::central_embedded(dir);
    loaded.config.edges.authentication = Authentication::Required;
    tweak(&mut loaded);
    let db = loaded.config.store.path.clone();
    let creds = EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db)).unwrap();
    let cred = creds.create("boai-school", edge).await.unwrap();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    std::fs::write(dir.join(format!("{edge}.cred")), format!("{}\n", cred.secret)).unwrap();
    (central, db, creds, cred)
}
