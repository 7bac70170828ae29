//! An image's config: what the scenarios start and what an image cut from
//! its files must carry over.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Engine, EngineError};

/// An image's config (`docker image inspect` → `.Config`): what the
/// scenarios start, and what a new image cut from its files must carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// `ENTRYPOINT`.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// `EXPOSE`d ports (`"8080/tcp": {}`).
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `ENV`, as `KEY=value`.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// `WORKDIR`.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
    /// `USER`.
    #[serde(rename = "User", default)]
    pub user: String,
    /// `VOLUME`s (`"/data": {}`).
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// `LABEL`s.
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageConfig {
    /// The config as the API client types it: ports and volumes come as
    /// names there, where the engine's JSON (and the CLI's) has them as the
    /// keys of empty objects.
    fn from_api(c: bollard::models::ImageConfig) -> ImageConfig {
        let keys = |v: Option<Vec<String>>| {
            v.map(|names| {
                names
                    .into_iter()
                    .map(|n| (n, serde_json::Value::Object(serde_json::Map::new())))
                    .collect()
            })
        };
        ImageConfig {
            entrypoint: c.entrypoint,
            cmd: c.cmd,
            exposed_ports: keys(c.exposed_ports),
            env: c.env,
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            volumes: keys(c.volumes),
            labels: c.labels.map(|l| l.into_iter().collect()),
        }
    }

    /// ENTRYPOINT followed by CMD.
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.entrypoint.clone().unwrap_or_default();
        v.extend(self.cmd.clone().unwrap_or_default());
        v
    }

    /// The lowest EXPOSEd TCP port.
    pub fn first_tcp_port(&self) -> Option<u16> {
        self.exposed_ports
            .as_ref()?
            .keys()
            .filter_map(|k| {
                let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
                (proto == "tcp").then(|| port.parse::<u16>().ok()).flatten()
            })
            .min()
    }
}

impl Engine {
    /// The config of `image`.
    pub fn image_config(&self, image: &str) -> Result<ImageConfig, EngineError> {
        if let Some(api) = self.api() {
            return Ok(api
                .image_config(image)?
                .map(ImageConfig::from_api)
                .unwrap_or_default());
        }
        let out =
            self.ok(self
                .spec()
                .args(["image", "inspect", "--format", "{{json .Config}}", image]))?;
        serde_json::from_slice(&out.stdout.bytes).map_err(|e| EngineError::Output {
            command: "image inspect".into(),
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_argv_and_port() {
        let c: ImageConfig = serde_json::from_str(
            r#"{"Entrypoint":["/app/start.sh"],"Cmd":["--port","8080"],
                "ExposedPorts":{"9090/tcp":{},"8080/tcp":{},"53/udp":{}},"WorkingDir":"/app"}"#,
        )
        .unwrap();
        assert_eq!(c.argv(), ["/app/start.sh", "--port", "8080"]);
        assert_eq!(c.first_tcp_port(), Some(8080));
        let empty: ImageConfig = serde_json::from_str(r#"{"Entrypoint":null,"Cmd":null}"#).unwrap();
        assert!(empty.argv().is_empty());
        assert_eq!(empty.first_tcp_port(), None);
    }
}
