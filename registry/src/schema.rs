//! The connections table's definition, for the local stack and tests. Production creates the
//! same table from `infra/` (tables.ts); both must stay in step with this.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::store::{Registry, RegistryError};

impl Registry {
    /// Creates the table with its GSI and TTL unless it exists. Idempotent.
    pub async fn ensure_table(&self) -> Result<(), RegistryError> {
        let config = self.config();
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .expect("name and type are set")
        };
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .expect("name and type are set")
        };
        // Fan-out needs only the connection id: a keys-only projection keeps GSI pages small.
        let index = GlobalSecondaryIndex::builder()
            .index_name(&config.index_name)
            .key_schema(key("connected", KeyType::Hash))
            .key_schema(key("connectedAt", KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .expect("index fields are set");
        let created = self
            .client()
            .create_table()
            .table_name(&config.table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("connectionId", KeyType::Hash))
            .attribute_definitions(attribute("connectionId", ScalarAttributeType::S))
            .attribute_definitions(attribute("connected", ScalarAttributeType::S))
            .attribute_definitions(attribute("connectedAt", ScalarAttributeType::N))
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(self.dynamo("CreateTable", e)),
        }
        self.ensure_ttl().await
    }

    async fn ensure_ttl(&self) -> Result<(), RegistryError> {
        let table = &self.config().table_name;
        let current = self
            .client()
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| self.dynamo("DescribeTimeToLive", e))?;
        let status = current
            .time_to_live_description
            .and_then(|d| d.time_to_live_status);
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(());
        }
        self.client()
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("ttl")
                    .enabled(true)
                    .build()
                    .expect("fields are set"),
            )
            .send()
            .await
            .map_err(|e| self.dynamo("UpdateTimeToLive", e))?;
        Ok(())
    }
}
