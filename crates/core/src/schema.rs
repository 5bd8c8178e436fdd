use serde::{Deserialize, Serialize};

/// The column types the ETL infers and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Boolean,
    Integer,
    Float,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
    String,
    /// A list of 32-bit floats per row: an image's pixels.
    Vector,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Timestamp => "timestamp",
            Self::String => "string",
            Self::Vector => "vector",
        }
    }

    /// Whether every value of `other` can be stored in a column of this type unchanged.
    pub fn holds(self, other: Self) -> bool {
        self == other
            || (self == Self::String && other != Self::Vector)
            || (self == Self::Float && other == Self::Integer)
    }

    /// The narrowest type holding both.
    pub fn widen(self, other: Self) -> Self {
        if self.holds(other) {
            self
        } else if other.holds(self) {
            other
        } else {
            Self::String
        }
    }
}

/// Every column is nullable: a missing value is a null, never a rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    pub fields: Vec<Field>,
}

/// The most a schema may take as the JSON stored in its catalog item: DynamoDB items hold
/// 400 KB, and the item has other attributes.
pub const MAX_SCHEMA_JSON_BYTES: usize = 350_000;

impl Schema {
    /// The schema as stored, or why it cannot be. With the column limits
    /// ([`crate::options::MAX_COLUMNS`], [`crate::options::MAX_COLUMN_NAME_BYTES`]) only
    /// names full of characters JSON escapes come near the bound; they are refused here
    /// rather than failing the write.
    pub fn to_stored_json(&self) -> Result<String, String> {
        let json = serde_json::to_string(self).expect("schemas serialise");
        if json.len() > MAX_SCHEMA_JSON_BYTES {
            return Err(format!(
                "the schema of {} columns takes {} bytes, more than the {MAX_SCHEMA_JSON_BYTES} the catalog stores",
                self.fields.len(),
                json.len()
            ));
        }
        Ok(json)
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The dataset schema an object with schema `incoming` is stored under, or why it
    /// cannot be. Without `evolve`, a new column or a type the dataset column cannot hold
    /// is refused; with it, new columns are appended and types widened. Columns the object
    /// lacks are stored as nulls either way.
    pub fn reconcile(&self, incoming: &Schema, evolve: bool) -> Result<Schema, String> {
        let mut result = self.clone();
        for field in &incoming.fields {
            match result.fields.iter_mut().find(|f| f.name == field.name) {
                None if evolve => result.fields.push(field.clone()),
                None => {
                    return Err(format!(
                        "column {:?} is not in the dataset schema (the dataset does not evolve its schema)",
                        field.name
                    ));
                }
                Some(existing) if existing.column_type.holds(field.column_type) => {}
                Some(existing) if evolve => existing.column_type = existing.column_type.widen(field.column_type),
                Some(existing) => {
                    return Err(format!(
                        "column {:?} is {} in the dataset schema but {} in this object",
                        field.name,
                        existing.column_type.as_str(),
                        field.column_type.as_str()
                    ));
                }
            }
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, ColumnType)]) -> Schema {
        Schema { fields: fields.iter().map(|(n, t)| Field { name: (*n).into(), column_type: *t }).collect() }
    }

    #[test]
    fn the_widest_schema_the_limits_allow_fits_its_catalog_item() {
        use crate::options::{MAX_COLUMN_NAME_BYTES, MAX_COLUMNS};
        let widest = Schema {
            fields: (0..MAX_COLUMNS)
                .map(|i| Field {
                    name: format!("{i:0>width$}", width = MAX_COLUMN_NAME_BYTES),
                    column_type: ColumnType::Timestamp,
                })
                .collect(),
        };
        assert!(widest.to_stored_json().is_ok());
        let escaped = Schema {
            fields: (0..MAX_COLUMNS)
                .map(|i| Field { name: format!("{i}{}", "\\".repeat(120)), column_type: ColumnType::String })
                .collect(),
        };
        assert!(escaped.to_stored_json().unwrap_err().contains("more than the 350000"));
    }

    #[test]
    fn compatible_objects_keep_the_dataset_schema() {
        let dataset = schema(&[("a", ColumnType::Float), ("b", ColumnType::String), ("c", ColumnType::Integer)]);
        let incoming = schema(&[("a", ColumnType::Integer), ("b", ColumnType::Boolean)]);
        assert_eq!(dataset.reconcile(&incoming, false), Ok(dataset.clone()));
    }

    #[test]
    fn new_columns_and_type_changes_are_refused_with_the_reason() {
        let dataset = schema(&[("a", ColumnType::Integer)]);
        let err =
            dataset.reconcile(&schema(&[("a", ColumnType::Integer), ("z", ColumnType::Float)]), false).unwrap_err();
        assert!(err.contains("\"z\"") && err.contains("not in the dataset schema"), "{err}");
        let err = dataset.reconcile(&schema(&[("a", ColumnType::String)]), false).unwrap_err();
        assert_eq!(err, "column \"a\" is integer in the dataset schema but string in this object");
    }

    #[test]
    fn evolving_datasets_append_columns_and_widen_types() {
        let dataset = schema(&[("a", ColumnType::Integer), ("t", ColumnType::Timestamp)]);
        let incoming = schema(&[("a", ColumnType::Float), ("t", ColumnType::Integer), ("z", ColumnType::Boolean)]);
        let evolved = dataset.reconcile(&incoming, true).unwrap();
        assert_eq!(evolved, schema(&[("a", ColumnType::Float), ("t", ColumnType::String), ("z", ColumnType::Boolean)]));
    }

    #[test]
    fn schema_json_names_types_in_lowercase() {
        let json = serde_json::to_value(schema(&[("a", ColumnType::Timestamp)])).unwrap();
        assert_eq!(json, serde_json::json!({"fields": [{"name": "a", "type": "timestamp"}]}));
    }
}
