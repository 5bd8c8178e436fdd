use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use sluice_aws::StoreError;
use sluice_core::{InvalidIngestId, InvalidName};
use sluice_formats::{FormatError, UnsupportedContentType};

use sluice_aws::http_api::error_response;

/// Everything a request can fail with. `status` and `code` are the one mapping from errors
/// to HTTP; clients branch on `code`, people read `message`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidDataset(#[from] InvalidName),
    #[error(transparent)]
    InvalidIngestId(#[from] InvalidIngestId),
    #[error("the Content-Type header is missing; send one of the supported types")]
    MissingContentType,
    #[error(transparent)]
    UnsupportedContentType(#[from] UnsupportedContentType),
    #[error(
        "the body is {size} bytes, more than the {max} allowed here; use POST /datasets/{{dataset}}/uploads for large files"
    )]
    PayloadTooLarge { size: usize, max: usize },
    #[error(
        "size_bytes is {size}, over this dataset's limits.max_object_bytes = {max} (set with PUT /datasets/{{dataset}}/options)"
    )]
    UploadTooLarge { size: u64, max: u64 },
    #[error("the body is marked base64 but does not decode: {0}")]
    InvalidBase64(String),
    #[error("{0}")]
    InvalidBody(#[from] FormatError),
    #[error("invalid upload request: {0}")]
    InvalidUploadRequest(String),
    #[error("invalid label: {0}")]
    InvalidLabel(String),
    #[error("invalid dataset options: {0}")]
    InvalidOptions(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry later")]
    RequestInProgress,
    #[error("{0}")]
    NotFound(String),
    #[error("no route {0}")]
    RouteNotFound(String),
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidDataset(_)
            | Self::InvalidIngestId(_)
            | Self::InvalidBase64(_)
            | Self::InvalidBody(_)
            | Self::InvalidUploadRequest(_)
            | Self::InvalidLabel(_)
            | Self::InvalidOptions(_)
            | Self::InvalidRequest(_)
            | Self::InvalidIdempotencyKey => 400,
            Self::NotFound(_) | Self::RouteNotFound(_) => 404,
            Self::RequestInProgress => 409,
            Self::PayloadTooLarge { .. } | Self::UploadTooLarge { .. } => 413,
            Self::MissingContentType | Self::UnsupportedContentType(_) => 415,
            Self::IdempotencyKeyReused => 422,
            Self::Store(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidDataset(_) => "invalid_dataset",
            Self::InvalidIngestId(_) => "invalid_ingest_id",
            Self::MissingContentType | Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::PayloadTooLarge { .. } | Self::UploadTooLarge { .. } => "payload_too_large",
            Self::InvalidBase64(_) => "invalid_body",
            Self::InvalidBody(FormatError::Empty) => "empty_body",
            Self::InvalidBody(FormatError::Limit { .. }) => "over_limit",
            Self::InvalidBody(_) => "invalid_body",
            Self::InvalidUploadRequest(_) => "invalid_upload_request",
            Self::InvalidLabel(_) => "invalid_label",
            Self::InvalidOptions(_) => "invalid_options",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RequestInProgress => "request_in_progress",
            Self::NotFound(_) => "not_found",
            Self::RouteNotFound(_) => "route_not_found",
            Self::Store(_) => "internal_error",
        }
    }

    /// The shared error shape; internal details stay in the logs.
    pub fn to_response(&self, request_id: &str) -> ApiGatewayV2httpResponse {
        error_response(self.status(), self.code(), &self.to_string(), request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx_and_say_what_is_wrong() {
        let err = ApiError::PayloadTooLarge { size: 10, max: 5 };
        assert_eq!(err.status(), 413);
        assert!(err.to_string().contains("/uploads"));
        assert_eq!(ApiError::InvalidBody(FormatError::Empty).code(), "empty_body");
        let over = ApiError::InvalidBody(FormatError::Limit {
            what: "max_columns".into(),
            limit: 2000,
            at: "the header".into(),
        });
        assert_eq!((over.status(), over.code()), (400, "over_limit"));
        assert_eq!(
            over.to_string().split(": ").last().unwrap(),
            "the header is over the dataset limit max_columns = 2000"
        );
        assert_eq!(ApiError::MissingContentType.status(), 415);
    }

    #[test]
    fn internal_errors_hide_their_detail_from_clients() {
        let err =
            ApiError::Store(StoreError { service: "S3", operation: "PutObject", message: "secret detail".into() });
        let response = err.to_response("req-1");
        assert_eq!(response.status_code, 500);
        let Some(aws_lambda_events::encodings::Body::Text(body)) = response.body else { panic!("a text body") };
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("req-1"));
    }
}
