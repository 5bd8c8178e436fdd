//! Rows in column form, as the trainer reads them from curated Parquet and as `predict`
//! builds them from a request.

/// One column's values; `None` is a null.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Integers, floats, booleans (0/1) and timestamps (epoch seconds).
    Numeric(Vec<Option<f64>>),
    Categorical(Vec<Option<String>>),
    /// Fixed-length float vectors (image pixels).
    Vector(Vec<Option<Vec<f32>>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Self::Numeric(v) => v.len(),
            Self::Categorical(v) => v.len(),
            Self::Vector(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `rows` missing values.
    pub fn extend_nulls(&mut self, rows: usize) {
        match self {
            Self::Numeric(v) => v.resize(v.len() + rows, None),
            Self::Categorical(v) => v.resize(v.len() + rows, None),
            Self::Vector(v) => v.resize(v.len() + rows, None),
        }
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Self {
        match self {
            Self::Numeric(v) => Self::Numeric(indices.iter().map(|&i| v[i]).collect()),
            Self::Categorical(v) => Self::Categorical(indices.iter().map(|&i| v[i].clone()).collect()),
            Self::Vector(v) => Self::Vector(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    pub columns: Vec<(String, Column)>,
}

impl Frame {
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    pub fn take(&self, indices: &[usize]) -> Self {
        Self { columns: self.columns.iter().map(|(n, c)| (n.clone(), c.take(indices))).collect() }
    }

    /// Appends `other`'s rows; columns are matched by name and must have the same kind.
    pub fn append(&mut self, other: Frame) -> Result<(), String> {
        if self.columns.is_empty() {
            *self = other;
            return Ok(());
        }
        let rows = self.rows();
        for (name, column) in other.columns {
            match (self.columns.iter_mut().find(|(n, _)| *n == name).map(|(_, c)| c), column) {
                (Some(Column::Numeric(a)), Column::Numeric(b)) => a.extend(b),
                (Some(Column::Categorical(a)), Column::Categorical(b)) => a.extend(b),
                (Some(Column::Vector(a)), Column::Vector(b)) => a.extend(b),
                (Some(_), _) => return Err(format!("column {name:?} has different types in different files")),
                (None, column) => {
                    // A column only later files have: earlier rows are nulls.
                    let padded = match column {
                        Column::Numeric(b) => Column::Numeric(std::iter::repeat_n(None, rows).chain(b).collect()),
                        Column::Categorical(b) => {
                            Column::Categorical(std::iter::repeat_n(None, rows).chain(b).collect())
                        }
                        Column::Vector(b) => Column::Vector(std::iter::repeat_n(None, rows).chain(b).collect()),
                    };
                    self.columns.push((name, padded));
                }
            }
        }
        let total = self.columns.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
        for (_, column) in &mut self.columns {
            match column {
                Column::Numeric(v) => v.resize(total, None),
                Column::Categorical(v) => v.resize(total, None),
                Column::Vector(v) => v.resize(total, None),
            }
        }
        Ok(())
    }
}
