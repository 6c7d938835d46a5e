// The EMF metric catalogue, `metrics.json` at the repository root: the one list of metric names
// and units that the Rust functions emit (registry/src/telemetry.rs refuses any other name) and
// that the alarms and the dashboard use. Its types make a misspelt metric a compile error here.

import catalogue from "../metrics.json";

export type Service = keyof typeof catalogue.services;
export type MetricName<S extends Service> = keyof (typeof catalogue.services)[S] & string;

export const NAMESPACE: string = catalogue.namespace;
export const DIMENSION: string = catalogue.dimension;

export interface CataloguedMetric {
    service: string;
    name: string;
    unit: string;
}

/** Every (service, metric) pair the catalogue lists. */
export function cataloguedMetrics(): CataloguedMetric[] {
    const services: Record<string, Record<string, string>> = catalogue.services;
    return Object.entries(services).flatMap(([service, metrics]) =>
        Object.entries(metrics).map(([name, unit]) => ({ service, name, unit })),
    );
}

/** A metric the functions emit: its namespace, name and the `Service` dimension. */
export function emf<S extends Service>(
    service: S,
    name: MetricName<S>,
): { namespace: string; metricName: string; dimensions: Record<string, string> } {
    return { namespace: NAMESPACE, metricName: name, dimensions: { [DIMENSION]: service } };
}
