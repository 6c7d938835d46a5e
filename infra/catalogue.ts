// The EMF metric catalogue, `metrics.json` at the repository root: the one list of metric names
// and units that the Rust functions emit (their telemetry refuses any other name) and that the
// alarms and the dashboard use. Its types make a misspelt metric a compile error here.
//
// Every EMF document carries the dimensions the catalogue lists, in its order: `Service` (the
// emitting service, `fanout` or `processor`) and `Stage` (the function's STAGE variable, which
// functions.ts sets to the stack's stage name). So two stacks in one account never share a
// metric, and an alarm or a graph that names only `Service` would find no data at all.

import catalogue from "../metrics.json";

export type Service = keyof typeof catalogue.services;
export type MetricName<S extends Service> = keyof (typeof catalogue.services)[S] & string;

export const NAMESPACE: string = catalogue.namespace;
/** The dimension names, in the catalogue's order. */
export const DIMENSIONS: readonly string[] = catalogue.dimensions;

/** The value of each dimension this program knows how to fill. */
const DIMENSION_VALUES: Record<string, (service: string, stage: string) => string> = {
    Service: (service) => service,
    Stage: (_service, stage) => stage,
};
for (const name of DIMENSIONS) {
    if (!(name in DIMENSION_VALUES)) {
        throw new Error(`metrics.json lists the dimension ${name}, which infra/catalogue.ts cannot fill: add its value there`);
    }
}

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

/** The dimensions of one service's metrics in one stage, in the catalogue's order. */
export function emfDimensions(service: string, stage: string): Record<string, string> {
    return Object.fromEntries(DIMENSIONS.map((name) => [name, DIMENSION_VALUES[name](service, stage)]));
}

/** A metric the functions of `stage` emit: its namespace, name and every catalogue dimension. */
export function emf<S extends Service>(
    stage: string,
    service: S,
    name: MetricName<S>,
): { namespace: string; metricName: string; dimensions: Record<string, string> } {
    return { namespace: NAMESPACE, metricName: name, dimensions: emfDimensions(service, stage) };
}
