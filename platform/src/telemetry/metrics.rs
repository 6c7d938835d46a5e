//! CloudWatch Embedded Metric Format documents.
//!
//! Metric names and units live in one place, `metrics.json` at the repository root, which the
//! Pulumi program's alarms read too; [`Metrics::add`] refuses names that are not in it. Every
//! document carries the dimensions the catalogue names: `Service`, and `Stage`, so that two
//! stacks in one account keep their metrics and alarms apart.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::clock::now_ms;

const CATALOGUE: &str = include_str!("../../../metrics.json");
/// The stage of metrics emitted before [`set_stage`] (the local stack, tests).
const DEFAULT_STAGE: &str = "local";

static STAGE: OnceLock<String> = OnceLock::new();

/// Sets the `Stage` dimension for the life of the process (the first call wins).
pub fn set_stage(stage: String) {
    let _ = STAGE.set(stage);
}

fn stage() -> &'static str {
    STAGE.get().map_or(DEFAULT_STAGE, String::as_str)
}

struct Catalogue {
    namespace: String,
    dimensions: Vec<String>,
    units: BTreeMap<(String, String), String>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE_CELL: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE_CELL.get_or_init(|| {
        let root: Value = serde_json::from_str(CATALOGUE).expect("metrics.json is valid JSON");
        let mut units = BTreeMap::new();
        for (service, metrics) in root["services"].as_object().expect("services object") {
            for (name, unit) in metrics.as_object().expect("metrics object") {
                let unit = unit.as_str().expect("unit string").to_owned();
                units.insert((service.clone(), name.clone()), unit);
            }
        }
        let dimensions = root["dimensions"]
            .as_array()
            .expect("dimensions array")
            .iter()
            .map(|d| d.as_str().expect("dimension name").to_owned())
            .collect();
        Catalogue {
            namespace: root["namespace"].as_str().expect("namespace").to_owned(),
            dimensions,
            units,
        }
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("metric {service}/{name} is not in metrics.json")]
pub struct UnknownMetric {
    pub service: String,
    pub name: String,
}

/// One EMF document: the metrics of one invocation of one service.
#[derive(Debug, Clone)]
pub struct Metrics {
    service: &'static str,
    values: BTreeMap<String, Value>,
    properties: Map<String, Value>,
}

impl Metrics {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            values: BTreeMap::new(),
            properties: Map::new(),
        }
    }

    /// Sets a metric to `value` (a number, or an array of numbers for several samples).
    pub fn add(&mut self, name: &str, value: impl Into<Value>) -> Result<(), UnknownMetric> {
        let key = (self.service.to_owned(), name.to_owned());
        if !catalogue().units.contains_key(&key) {
            return Err(UnknownMetric {
                service: key.0,
                name: key.1,
            });
        }
        self.values.insert(name.to_owned(), value.into());
        Ok(())
    }

    /// Sets several counts at once.
    pub fn add_counts(&mut self, counts: &[(&str, u64)]) -> Result<(), UnknownMetric> {
        counts
            .iter()
            .try_for_each(|(name, value)| self.add(name, *value))
    }

    /// A searchable field that is not a metric (broadcast ids, request ids).
    pub fn property(&mut self, name: &str, value: impl Into<Value>) {
        self.properties.insert(name.to_owned(), value.into());
    }

    /// The EMF JSON document.
    pub fn render(&self) -> String {
        let catalogue = catalogue();
        let definitions: Vec<Value> = self
            .values
            .keys()
            .map(|name| {
                let unit = &catalogue.units[&(self.service.to_owned(), name.clone())];
                json!({"Name": name, "Unit": unit})
            })
            .collect();
        let mut document = self.properties.clone();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms(),
                "CloudWatchMetrics": [{
                    "Namespace": catalogue.namespace,
                    "Dimensions": [catalogue.dimensions],
                    "Metrics": definitions,
                }],
            }),
        );
        for dimension in &catalogue.dimensions {
            document.insert(dimension.clone(), self.dimension_value(dimension).into());
        }
        for (name, value) in &self.values {
            document.insert(name.clone(), value.clone());
        }
        Value::Object(document).to_string()
    }

    fn dimension_value(&self, dimension: &str) -> &str {
        match dimension {
            "Service" => self.service,
            "Stage" => stage(),
            other => panic!("metrics.json names dimension {other:?}, which no code fills"),
        }
    }

    /// Writes the document as one line on stdout, where the Lambda agent picks EMF up.
    pub fn emit(&self) {
        use std::io::Write;
        let mut line = self.render();
        line.push('\n');
        // A failed write to stdout cannot be reported anywhere better.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

/// Every metric name the catalogue lists for `service` (tests check both directions with it).
pub fn catalogued(service: &str) -> Vec<String> {
    catalogue()
        .units
        .keys()
        .filter(|(s, _)| s == service)
        .map(|(_, name)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_valid_emf_with_service_and_stage() {
        let mut metrics = Metrics::new("fanout");
        metrics.add("Delivered", 10).unwrap();
        metrics.add("DeliveryLatency", json!([12, 40])).unwrap();
        metrics.property("broadcastIds", json!(["b1"]));
        let doc: Value = serde_json::from_str(&metrics.render()).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "IopsDashboard");
        assert_eq!(directive["Dimensions"], json!([["Service", "Stage"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "Delivered", "Unit": "Count"},
                {"Name": "DeliveryLatency", "Unit": "Milliseconds"}
            ])
        );
        assert!(doc["_aws"]["Timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(doc["Service"], "fanout");
        assert_eq!(doc["Stage"], stage(), "every dimension has a value");
        assert_eq!(doc["Delivered"], 10);
        assert_eq!(doc["broadcastIds"], json!(["b1"]));
    }

    #[test]
    fn unknown_names_are_refused() {
        let mut metrics = Metrics::new("fanout");
        assert_eq!(
            metrics.add("Delivred", 1),
            Err(UnknownMetric {
                service: "fanout".into(),
                name: "Delivred".into()
            })
        );
        assert!(metrics.add("Records", 1).is_err(), "a processor metric");
        assert!(catalogued("fanout").contains(&"Gone".to_owned()));
    }
}
