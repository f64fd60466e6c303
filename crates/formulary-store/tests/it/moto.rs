//! moto (a real S3-compatible server, see `moto_server.rs`) with what the store's suite adds: a
//! blob store on it, and writes that go around the application.

#[path = "moto_server.rs"]
mod server;

use formulary_store::{BlobLocation, BlobStore, S3Options};

pub use server::Moto;

/// Sets the credentials the in-process S3 client signs with (moto accepts any), once, before
/// any store is built, so no thread reads the environment meanwhile.
fn set_test_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (name, value) in server::CREDENTIALS {
            std::env::set_var(name, value);
        }
        std::env::set_var("AWS_REGION", "us-east-1");
    });
}

impl Moto {
    /// A blob store in `bucket` under `prefix`.
    pub fn store(&self, bucket: &str, prefix: &str) -> BlobStore {
        set_test_credentials();
        let options = S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".to_owned()),
            allow_http: true,
        };
        let location =
            BlobLocation::parse(&format!("s3://{bucket}/{prefix}"), &options).expect("location");
        BlobStore::open(&location).expect("store opens")
    }

    /// Writes an object directly (a signed request made by object_store itself, not through
    /// the blob store): damage done around the application.
    pub async fn put_directly(&self, bucket: &str, key: &str, bytes: &'static [u8]) {
        use object_store::ObjectStore;
        set_test_credentials();
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
            .expect("S3 client");
        s3.put(&object_store::path::Path::from(key), bytes.into())
            .await
            .expect("direct write");
    }
}
