use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field as ParquetField, Row};

use sluice_core::options::DecimalSeparator;

use super::*;

fn read_rows(parquet: &[u8]) -> Vec<Row> {
    let reader = SerializedFileReader::new(Bytes::from(parquet.to_vec())).unwrap();
    reader.get_row_iter(None).unwrap().map(Result::unwrap).collect()
}

fn cell(row: &Row, name: &str) -> ParquetField {
    row.get_column_iter().find(|(n, _)| *n == name).map(|(_, f)| f.clone()).unwrap()
}

fn pixels(row: &Row) -> Vec<f32> {
    let ParquetField::ListInternal(list) = cell(row, "pixels") else { panic!("pixels is a list") };
    list.elements()
        .iter()
        .map(|field| match field {
            ParquetField::Float(v) => *v,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn types(schema: &Schema) -> Vec<(&str, ColumnType)> {
    schema.fields.iter().map(|f| (f.name.as_str(), f.column_type)).collect()
}

fn csv(body: &str) -> Result<Outcome, EtlError> {
    process_table(ContentKind::Csv, body.as_bytes(), None, &DatasetOptions::default())
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../samples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn infers_each_type_and_writes_typed_parquet() {
    let outcome = csv("id,price,active,seen_at,name,note\n\
         1, 9.5 ,true,2026-11-22T10:15:01Z,alpha,NA\n\
         2,10,FALSE,2026-11-23,beta,\n\
         3,null,true,2026-11-24 08:00:00,gamma,x\n")
    .unwrap();
    assert_eq!(
        types(&outcome.schema),
        vec![
            ("id", ColumnType::Integer),
            ("price", ColumnType::Float),
            ("active", ColumnType::Boolean),
            ("seen_at", ColumnType::Timestamp),
            ("name", ColumnType::String),
            ("note", ColumnType::String),
        ]
    );
    assert_eq!((outcome.rows_in, outcome.rows_out), (3, 3));
    let rows = read_rows(&outcome.parquet);
    assert_eq!(rows.len(), 3);
    assert_eq!(cell(&rows[0], "id"), ParquetField::Long(1));
    assert_eq!(cell(&rows[0], "price"), ParquetField::Double(9.5), "cells are trimmed");
    assert_eq!(cell(&rows[1], "active"), ParquetField::Bool(false));
    assert_eq!(cell(&rows[0], "seen_at"), ParquetField::TimestampMicros(1_795_342_501_000_000));
    assert_eq!(cell(&rows[2], "name"), ParquetField::Str("gamma".into()));
    assert_eq!(cell(&rows[2], "price"), ParquetField::Null, "null tokens become nulls");
    assert_eq!(cell(&rows[0], "note"), ParquetField::Null);
    assert_eq!(cell(&rows[1], "note"), ParquetField::Null);
}

#[test]
fn every_row_is_either_written_or_rejected_with_its_reason() {
    let mut body = String::from("a,b\n");
    for i in 0..200 {
        body.push_str(&format!("{i},x{i}\n"));
    }
    body.push_str("oops,y\n"); // row 201: not an integer
    body.push_str("5,x5\n"); // row 202: duplicate of row 6
    body.push_str("7\n"); // row 203: ragged
    let outcome = csv(&body).unwrap();
    assert_eq!(types(&outcome.schema), vec![("a", ColumnType::Integer), ("b", ColumnType::String)]);
    assert_eq!(outcome.rows_in, 203);
    assert_eq!(outcome.rows_out, 200);
    assert_eq!(outcome.rows_in, outcome.rows_out + outcome.rejected.len() as u64);
    let reasons: Vec<(u64, &str)> = outcome.rejected.iter().map(|r| (r.row, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (201, "column \"a\": \"oops\" is not a valid integer"),
            (202, "exact duplicate of row 6"),
            (203, "expected 2 fields (as many as the header), found 1"),
        ]
    );
    assert_eq!(outcome.rejected[0].values["a"], "oops", "the rejected row is kept whole");
    assert_eq!(read_rows(&outcome.parquet).len(), 200);
}

#[test]
fn duplicates_are_judged_after_trimming_and_null_normalisation() {
    let outcome = csv("a,b\n1,x\n 1 ,x\n2,NA\n2,\n").unwrap();
    assert_eq!(outcome.rows_out, 2);
    assert_eq!(outcome.rejected.len(), 2);
}

#[test]
fn a_mostly_text_column_stays_text() {
    let outcome = csv("code\n1\n2\nA7\n").unwrap();
    assert_eq!(types(&outcome.schema), vec![("code", ColumnType::String)]);
    assert_eq!(outcome.rows_out, 3);
}

#[test]
fn later_objects_are_checked_against_the_dataset_schema() {
    let first = csv("a,b\n1,2.5\n").unwrap();
    let options = DatasetOptions::default();
    let new_column = process_table(ContentKind::Csv, b"a,b,c\n1,2.5,z\n", Some(&first.schema), &options);
    assert!(matches!(&new_column, Err(EtlError::Schema(reason)) if reason.contains("\"c\"")), "{new_column:?}");
    let type_change = process_table(ContentKind::Csv, b"a,b\nx,2.5\ny,1\n", Some(&first.schema), &options);
    assert!(matches!(&type_change, Err(EtlError::Schema(reason)) if reason.contains("integer")), "{type_change:?}");

    let compatible = process_table(ContentKind::Csv, b"b,a\n3,4\n", Some(&first.schema), &options).unwrap();
    assert_eq!(compatible.schema, first.schema, "column order and widening follow the dataset");
    assert_eq!(cell(&read_rows(&compatible.parquet)[0], "b"), ParquetField::Double(3.0));

    let evolving = DatasetOptions { evolve_schema: true, ..DatasetOptions::default() };
    let evolved = process_table(ContentKind::Csv, b"a,b,c\nx,2.5,z\n", Some(&first.schema), &evolving).unwrap();
    assert_eq!(
        types(&evolved.schema),
        vec![("a", ColumnType::String), ("b", ColumnType::Float), ("c", ColumnType::String)]
    );
}

#[test]
fn a_few_stray_values_are_rejected_rows_not_a_type_change() {
    let first = csv("x,name\n1.5,a\n").unwrap();
    let dirty = process_table(
        ContentKind::Csv,
        b"x,name\n2.5,b\nfive,c\n3.5,d\n",
        Some(&first.schema),
        &DatasetOptions::default(),
    )
    .unwrap();
    assert_eq!(dirty.schema, first.schema);
    assert_eq!((dirty.rows_in, dirty.rows_out), (3, 2));
    assert_eq!(dirty.rejected[0].reason, "column \"x\": \"five\" is not a valid float");
}

#[test]
fn replaying_an_object_produces_identical_bytes() {
    let body = sample("iris.csv");
    let options = DatasetOptions::default();
    let first = process_table(ContentKind::Csv, &body, None, &options).unwrap();
    let second = process_table(ContentKind::Csv, &body, None, &options).unwrap();
    assert_eq!(first.parquet, second.parquet);
    assert_eq!(first.profile, second.profile);
}

#[test]
fn all_tabular_samples_agree() {
    let options = DatasetOptions::default();
    let csv = process_table(ContentKind::Csv, &sample("iris.csv"), None, &options).unwrap();
    for (kind, file) in
        [(ContentKind::Xlsx, "iris.xlsx"), (ContentKind::Json, "iris.json"), (ContentKind::Ndjson, "iris.ndjson")]
    {
        let outcome = process_table(kind, &sample(file), Some(&csv.schema), &options).unwrap();
        assert_eq!(outcome.schema, csv.schema, "{file}");
        assert_eq!((outcome.rows_in, outcome.rows_out), (12, 12), "{file}");
        assert_eq!(read_rows(&outcome.parquet), read_rows(&csv.parquet), "{file} holds the same values");
    }
    assert_eq!(
        types(&csv.schema),
        vec![
            ("sepal_length", ColumnType::Float),
            ("sepal_width", ColumnType::Float),
            ("petal_length", ColumnType::Float),
            ("petal_width", ColumnType::Float),
            ("species", ColumnType::String),
        ]
    );
}

#[test]
fn json_records_may_differ_in_keys_and_nest() {
    let body = br#"[{"a":1,"tags":["x","y"]},{"b":true,"a":2}]"#;
    let outcome = process_table(ContentKind::Json, body, None, &DatasetOptions::default()).unwrap();
    assert_eq!(
        types(&outcome.schema),
        vec![("a", ColumnType::Integer), ("tags", ColumnType::String), ("b", ColumnType::Boolean)]
    );
    let rows = read_rows(&outcome.parquet);
    assert_eq!(cell(&rows[0], "tags"), ParquetField::Str(r#"["x","y"]"#.into()));
    assert_eq!(cell(&rows[0], "b"), ParquetField::Null);
}

#[test]
fn decimal_comma_and_semicolon_delimiter() {
    let options =
        DatasetOptions { decimal_separator: DecimalSeparator::Comma, csv_delimiter: Some(';'), ..Default::default() };
    let outcome = process_table(ContentKind::Csv, b"x;y\n1,5;2\n-0,25;3\n", None, &options).unwrap();
    assert_eq!(types(&outcome.schema), vec![("x", ColumnType::Float), ("y", ColumnType::Integer)]);
    assert_eq!(cell(&read_rows(&outcome.parquet)[1], "x"), ParquetField::Double(-0.25));
}

#[test]
fn large_objects_are_written_in_several_row_groups() {
    let mut body = String::from("n,half\n");
    for i in 0..(ROW_GROUP_ROWS + 10) {
        body.push_str(&format!("{i},{}\n", i as f64 / 2.0));
    }
    let outcome = csv(&body).unwrap();
    let reader = SerializedFileReader::new(Bytes::from(outcome.parquet.clone())).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 2);
    assert_eq!(reader.metadata().file_metadata().num_rows(), ROW_GROUP_ROWS as i64 + 10);
    assert_eq!(outcome.profile.rows, ROW_GROUP_ROWS as u64 + 10);
    let n = outcome.profile.column("n").unwrap();
    let sluice_profile::Stats::Numeric(stats) = &n.stats else { panic!("numeric") };
    assert_eq!((stats.min, stats.max), (0.0, (ROW_GROUP_ROWS + 9) as f64));
}

#[test]
fn a_table_is_typed_by_its_prefix_and_later_misfits_are_rejected_rows() {
    let mut body = String::from("n,label\n");
    for i in 0..INFERENCE_ROWS {
        body.push_str(&format!("{i},a\n"));
    }
    body.push_str("2.5,b\n7,c\n");
    let outcome = csv(&body).unwrap();
    assert_eq!(types(&outcome.schema), vec![("n", ColumnType::Integer), ("label", ColumnType::String)]);
    assert_eq!((outcome.rows_in, outcome.rows_out), (INFERENCE_ROWS + 2, INFERENCE_ROWS + 1));
    let [rejected] = outcome.rejected.as_slice() else { panic!("{:?}", outcome.rejected) };
    assert_eq!(rejected.row, INFERENCE_ROWS + 1);
    assert_eq!(rejected.reason, "column \"n\": \"2.5\" is not a valid integer");
    assert_eq!(outcome.profile.column("label").unwrap().count, INFERENCE_ROWS + 1);
}

#[test]
fn a_json_key_first_seen_in_the_last_record_is_typed_by_its_values() {
    let mut body = String::new();
    for i in 0..INFERENCE_ROWS + 5 {
        body.push_str(&format!("{{\"id\":{i}}}\n"));
    }
    body.push_str("{\"id\":-1,\"late\":2.5}\n");
    let outcome = process_table(ContentKind::Ndjson, body.as_bytes(), None, &DatasetOptions::default()).unwrap();
    assert_eq!(types(&outcome.schema), vec![("id", ColumnType::Integer), ("late", ColumnType::Float)]);
    assert_eq!(outcome.rows_out, INFERENCE_ROWS + 6);
}

#[test]
fn profiles_describe_the_written_rows() {
    let outcome = csv("x,c\n1,a\n2,a\n3,b\nNA,\n").unwrap();
    assert_eq!(outcome.profile.rows, 4);
    let x = outcome.profile.column("x").unwrap();
    assert_eq!((x.count, x.nulls), (3, 1));
    let c = outcome.profile.column("c").unwrap();
    let sluice_profile::Stats::Categorical(stats) = &c.stats else { panic!("categorical") };
    assert_eq!(stats.top, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
}

/// The shape of a public cars data set: `Displacement` is whole in all rows but one,
/// `Year` is a date.
fn cars_json() -> String {
    let records: Vec<String> = (0..406)
        .map(|i| {
            let displacement = if i == 200 { "97.5".to_owned() } else { (300 + i % 50).to_string() };
            let year = 1970 + i % 13;
            format!(
                r#"{{"Name":"car {i}","Miles_per_Gallon":{},"Displacement":{displacement},"Year":"{year}-01-01"}}"#,
                15 + i % 20
            )
        })
        .collect();
    format!("[{}]", records.join(",\n"))
}

#[test]
fn a_decimal_among_whole_numbers_makes_a_float_column_and_loses_no_row() {
    let outcome = process_table(ContentKind::Json, cars_json().as_bytes(), None, &DatasetOptions::default()).unwrap();
    assert_eq!(
        types(&outcome.schema),
        vec![
            ("Displacement", ColumnType::Float),
            ("Miles_per_Gallon", ColumnType::Integer),
            ("Name", ColumnType::String),
            ("Year", ColumnType::Timestamp),
        ]
    );
    assert_eq!((outcome.rows_in, outcome.rows_out, outcome.rejected.len()), (406, 406, 0));
    assert_eq!(cell(&read_rows(&outcome.parquet)[200], "Displacement"), ParquetField::Double(97.5));

    // A dataset whose column is already integer widens when it evolves, and otherwise keeps
    // its type and sets the decimal aside with the reason.
    let integers =
        process_table(ContentKind::Json, br#"[{"Displacement":300}]"#, None, &DatasetOptions::default()).unwrap();
    let evolving = DatasetOptions { evolve_schema: true, ..DatasetOptions::default() };
    let widened = process_table(ContentKind::Json, cars_json().as_bytes(), Some(&integers.schema), &evolving).unwrap();
    assert_eq!(widened.schema.field("Displacement").unwrap().column_type, ColumnType::Float);
    assert_eq!(widened.rows_out, 406);
    let fixed = DatasetOptions::default();
    let kept = process_table(
        ContentKind::Ndjson,
        b"{\"Displacement\":300}\n{\"Displacement\":97.5}\n{\"Displacement\":301}\n",
        Some(&integers.schema),
        &fixed,
    )
    .unwrap();
    assert_eq!(kept.schema, integers.schema);
    assert_eq!(kept.rejected[0].reason, "column \"Displacement\": \"97.5\" is not a valid integer");
}

#[test]
fn objects_over_a_limit_fail_with_the_limit_named() {
    let narrow = DatasetOptions {
        limits: sluice_core::options::TableLimits { max_columns: 3, ..Default::default() },
        ..DatasetOptions::default()
    };
    let err = process_table(ContentKind::Csv, b"a,b,c,d\n1,2,3,4\n", None, &narrow).unwrap_err();
    assert_eq!(err.to_string(), "cannot parse the object: the header is over the dataset limit max_columns = 3");
}

#[test]
fn unparseable_objects_are_errors() {
    assert!(matches!(csv("a,a\n1,2\n"), Err(EtlError::Parse(_))));
    let bad_json = process_table(ContentKind::Json, b"[1,2]", None, &DatasetOptions::default());
    assert!(matches!(bad_json, Err(EtlError::Parse(reason)) if reason.contains("record 1")));
}

#[test]
fn an_image_becomes_one_row_of_scaled_grayscale_pixels() {
    let outcome =
        process_image(ContentKind::Png, &sample("digit-7.png"), Some("7"), None, &DatasetOptions::default()).unwrap();
    assert_eq!(types(&outcome.schema), vec![("label", ColumnType::String), ("pixels", ColumnType::Vector)]);
    let rows = read_rows(&outcome.parquet);
    assert_eq!(rows.len(), 1);
    assert_eq!(cell(&rows[0], "label"), ParquetField::Str("7".into()));
    let pixels = pixels(&rows[0]);
    assert_eq!(pixels.len(), 784);
    assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(pixels.iter().any(|&p| p > 0.5), "the digit's strokes are bright");
}

#[test]
fn images_are_resized_to_the_configured_size_and_checked_against_the_dataset() {
    let options = DatasetOptions { image_size: Some([8, 4]), ..Default::default() };
    let outcome = process_image(ContentKind::Jpeg, &sample("digit-3.jpg"), None, None, &options).unwrap();
    let rows = read_rows(&outcome.parquet);
    assert_eq!(pixels(&rows[0]).len(), 32);
    assert_eq!(cell(&rows[0], "label"), ParquetField::Null);
    let table_schema = csv("a\n1\n").unwrap().schema;
    let mismatch = process_image(ContentKind::Png, &sample("digit-7.png"), None, Some(&table_schema), &options);
    assert!(matches!(mismatch, Err(EtlError::Schema(_))));
    let bomb =
        std::fs::read(format!("{}/../formats/tests/fixtures/bomb-7000x7000.png", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(
        matches!(process_image(ContentKind::Png, &bomb, None, None, &options), Err(EtlError::Image(m)) if m.contains("7000x7000"))
    );
}

#[test]
fn only_columns_whose_values_repeat_get_a_parquet_dictionary() {
    let body: String = std::iter::once("id,colour,comment\n".to_owned())
        .chain((0..3_000).map(|row| format!("{row},{},note {row}\n", ["red", "green", "blue"][row % 3])))
        .collect();
    let outcome = csv(&body).unwrap();
    let reader = SerializedFileReader::new(Bytes::from(outcome.parquet)).unwrap();
    let row_group = reader.metadata().row_group(0);
    let dictionary = |name: &str| {
        let column = row_group.columns().iter().find(|column| column.column_path().string() == name).unwrap();
        column.dictionary_page_offset().is_some()
    };
    assert_eq!((dictionary("id"), dictionary("colour"), dictionary("comment")), (false, true, false));
}
