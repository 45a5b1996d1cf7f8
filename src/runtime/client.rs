//! A typed client over the in-process REST core: the same admission and
//! concurrency rules as HTTP clients, without the network.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::Resource;
use crate::api::registry::{DynResource, UpdateScope};
use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::patch::PatchType;
use crate::apiserver::rest::{Api, DeleteOptions, Deleted, ListOptions, WriteOptions};

/// Typed access to the API for controllers and the embedded agent.
#[derive(Clone)]
pub struct Client {
    pub api: Api,
}

fn to_value<T: Serialize>(obj: &T) -> ApiResult<Value> {
    serde_json::to_value(obj).map_err(|e| ApiError::internal(format!("encode: {e}")))
}

fn from_value<T: DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| ApiError::internal(format!("decode: {e}")))
}

impl Client {
    pub fn new(api: Api) -> Client {
        Client { api }
    }

    /// The registered type for `T`.
    pub fn rt<T: Resource>(&self) -> ApiResult<&'static dyn DynResource> {
        self.api.resource(T::GROUP, T::VERSION, T::PLURAL)
    }

    /// Gets an object; `Ok(None)` when it does not exist. Reads the local
    /// state (controllers reconcile from watches; staleness is corrected by
    /// resourceVersion preconditions on write).
    pub async fn get<T: Resource>(&self, ns: &str, name: &str) -> ApiResult<Option<T>> {
        let rt = self.rt::<T>()?;
        match self.api.get(rt.info(), ns, name, Some("0")).await {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ApiError::internal(format!("decode: {e}"))),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects (all namespaces when `ns` is None) matching a label selector.
    pub async fn list<T: Resource>(
        &self,
        ns: Option<&str>,
        label_selector: Option<&str>,
    ) -> ApiResult<Vec<T>> {
        let rt = self.rt::<T>()?;
        let opts = ListOptions {
            label_selector: label_selector.map(str::to_string),
            resource_version: Some("0".into()),
            ..Default::default()
        };
        let page = self.api.list(rt, ns, &opts).await?;
        page.items
            .iter()
            .map(|b| {
                serde_json::from_slice(b).map_err(|e| ApiError::internal(format!("decode: {e}")))
            })
            .collect()
    }

    pub async fn create<T: Resource>(&self, obj: &T) -> ApiResult<T> {
        let rt = self.rt::<T>()?;
        let ns = obj.meta().namespace.clone();
        let (v, _) = self
            .api
            .create(rt, &ns, to_value(obj)?, &WriteOptions::default())
            .await?;
        from_value(v)
    }

    /// Replaces the object; its resourceVersion is the precondition.
    pub async fn update<T: Resource>(&self, obj: &T) -> ApiResult<T> {
        let rt = self.rt::<T>()?;
        let m = obj.meta();
        let (v, _) = self
            .api
            .update(
                rt,
                &m.namespace,
                &m.name,
                to_value(obj)?,
                UpdateScope::Main,
                &WriteOptions::default(),
            )
            .await?;
        from_value(v)
    }

    /// Replaces the status; the object's resourceVersion is the precondition.
    pub async fn update_status<T: Resource>(&self, obj: &T) -> ApiResult<T> {
        let rt = self.rt::<T>()?;
        let m = obj.meta();
        let (v, _) = self
            .api
            .update(
                rt,
                &m.namespace,
                &m.name,
                to_value(obj)?,
                UpdateScope::Status,
                &WriteOptions::default(),
            )
            .await?;
        from_value(v)
    }

    /// Applies a JSON merge patch (main resource or status).
    pub async fn patch<T: Resource>(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> ApiResult<T> {
        let rt = self.rt::<T>()?;
        let scope = if status {
            UpdateScope::Status
        } else {
            UpdateScope::Main
        };
        let (v, _) = self
            .api
            .patch(
                rt,
                ns,
                name,
                PatchType::Merge,
                patch,
                scope,
                &WriteOptions::default(),
            )
            .await?;
        from_value(v)
    }

    /// Deletes an object; `Ok(false)` when it was already gone.
    pub async fn delete<T: Resource>(
        &self,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<bool> {
        let rt = self.rt::<T>()?;
        match self.api.delete(rt, ns, name, opts).await {
            Ok(Deleted::Gone(_)) | Ok(Deleted::Pending(_)) => Ok(true),
            Err(e) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes by dynamic type (garbage collection).
    pub async fn delete_dyn(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<bool> {
        match self.api.delete(rt, ns, name, opts).await {
            Ok(_) => Ok(true),
            Err(e) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Merge-patches by dynamic type (garbage collection).
    pub async fn patch_dyn(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> ApiResult<Value> {
        let (v, _) = self
            .api
            .patch(
                rt,
                ns,
                name,
                PatchType::Merge,
                patch,
                UpdateScope::Main,
                &WriteOptions::default(),
            )
            .await?;
        Ok(v)
    }
}
