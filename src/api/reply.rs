//! What a handler answers, typed: the status and the `data` type of the
//! envelope are part of the handler's signature, so the OpenAPI document
//! reads them from there (`openapi`) and cannot drift from the code.

use serde::Serialize;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply as _;

use crate::web::envelope::{self, Pagination};

/// A typed success answer: its status and how the document describes it.
pub trait Answer {
    /// The success status.
    const STATUS: u16;
    /// The answer's schema; `schemas` collects the named schemas it refers to.
    fn schema(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;
    fn into_response(self) -> Response;
}

/// `{"success": true, "data": T}` with status `S`.
pub struct Data<T, const S: u16>(pub T);

impl<T, const S: u16> Data<T, S> {
    /// The answer carrying `data`.
    pub fn new(data: T) -> Self {
        Data(data)
    }
}

/// 200 `{"success": true, "data": T}`.
pub type Success<T> = Data<T, 200>;
/// 201 `{"success": true, "data": T}`.
pub type Created<T> = Data<T, 201>;
/// 202 `{"success": true, "data": T}`.
pub type Accepted<T> = Data<T, 202>;

/// A `$ref` to `T`, registering `T` (and what it refers to) in `schemas`.
pub fn reference<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

fn success(data: RefOr<Schema>, list: bool) -> RefOr<Schema> {
    let mut o = ObjectBuilder::new()
        .property(
            "success",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::Boolean)
                .enum_values(Some([true])),
        )
        .required("success")
        .required("data");
    o = if list {
        o.property("data", utoipa::openapi::ArrayBuilder::new().items(data))
            .property(
                "pagination",
                RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Pagination")),
            )
            .required("pagination")
    } else {
        o.property("data", data)
    };
    RefOr::T(Schema::Object(o.build()))
}

impl<T: Serialize + ToSchema, const S: u16> Answer for Data<T, S> {
    const STATUS: u16 = S;
    fn schema(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
        success(reference::<T>(schemas), false)
    }
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(S).unwrap_or(StatusCode::OK);
        envelope::ok(status, &self.0)
    }
}

/// 200 `{"success": true, "data": [T], "pagination": {...}}`.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

impl<T: Serialize + ToSchema> Answer for Listed<T> {
    const STATUS: u16 = 200;
    fn schema(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
        reference::<Pagination>(schemas);
        success(reference::<T>(schemas), true)
    }
    fn into_response(self) -> Response {
        envelope::list(&self.items, self.pagination)
    }
}

/// 200 with a bare JSON object, no envelope (the OpenAPI document itself).
pub struct Document(pub serde_json::Value);

impl Answer for Document {
    const STATUS: u16 = 200;
    fn schema(_: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::Object)
                .build(),
        ))
    }
    fn into_response(self) -> Response {
        warp::reply::with_status(warp::reply::json(&self.0), StatusCode::OK).into_response()
    }
}
