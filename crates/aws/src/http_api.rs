//! The responses every API function sends through API Gateway (HTTP API, payload 2.0):
//! JSON bodies, and one error shape, `{"error": {"code", "message"}, "request_id"}`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::HeaderValue;
use http::header::CONTENT_TYPE;

pub fn json_response(status: u16, body: &serde_json::Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// An error for the client: a stable `code` to branch on, a `message` for people, and the
/// request id that finds the details in the function's log.
pub fn error_response(status: u16, code: &str, message: &str, request_id: &str) -> ApiGatewayV2httpResponse {
    let body = serde_json::json!({ "error": { "code": code, "message": message }, "request_id": request_id });
    json_response(status, &body)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the body is marked base64 but does not decode: {0}")]
    InvalidBase64(String),
}

/// The request body as bytes (API Gateway base64-encodes binary bodies), refused if over
/// `max` bytes before it is decoded.
pub fn body_bytes(request: &ApiGatewayV2httpRequest, max: usize) -> Result<Vec<u8>, BodyError> {
    use base64::Engine;
    let text = request.body.as_deref().unwrap_or_default();
    let size = if request.is_base64_encoded { text.len() / 4 * 3 } else { text.len() };
    if size > max {
        return Err(BodyError::TooLarge { size, max });
    }
    if !request.is_base64_encoded {
        return Ok(text.as_bytes().to_vec());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|err| BodyError::InvalidBase64(err.to_string()))?;
    if bytes.len() > max {
        return Err(BodyError::TooLarge { size: bytes.len(), max });
    }
    Ok(bytes)
}

/// A path parameter, or `""` when the route has none of that name.
pub fn path_parameter<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> &'a str {
    request.path_parameters.get(name).map(String::as_str).unwrap_or_default()
}

/// The query parameter `name` as a whole number from 1 to `max`: `default` when absent, the
/// message for the client when it is something else.
pub fn query_count(request: &ApiGatewayV2httpRequest, name: &str, default: usize, max: usize) -> Result<usize, String> {
    match request.query_string_parameters.first(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("{name} must be a whole number from 1 to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_one_shape() {
        let response = error_response(404, "not_found", "no such thing", "req-7");
        assert_eq!(response.status_code, 404);
        assert_eq!(response.headers[CONTENT_TYPE], "application/json");
        let Some(Body::Text(text)) = response.body else { panic!("a text body") };
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_found", "message": "no such thing"}, "request_id": "req-7"})
        );
    }

    #[test]
    fn counts_in_the_query_are_whole_numbers_in_range() {
        let mut request = ApiGatewayV2httpRequest::default();
        assert_eq!(query_count(&request, "limit", 100, 500), Ok(100));
        for (text, expected) in
            [("1", Ok(1)), ("500", Ok(500)), ("0", Err(())), ("501", Err(())), ("-3", Err(())), ("x", Err(()))]
        {
            request.query_string_parameters =
                std::collections::HashMap::from([("limit".to_owned(), text.to_owned())]).into();
            let counted = query_count(&request, "limit", 100, 500);
            assert_eq!(counted.as_ref().map_err(|_| ()), expected.as_ref().map_err(|_| ()), "{text}");
            if let Err(message) = counted {
                assert_eq!(message, "limit must be a whole number from 1 to 500");
            }
        }
    }
}
