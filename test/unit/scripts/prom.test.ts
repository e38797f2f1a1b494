import { describe, expect, test } from "bun:test";
import { counterIncrease, gaugeAboveBaseline, histogramQuantile, parsePromText, seriesKey, sumBy, verbResourceKey } from "../../../scripts/lib/prom.ts";

// Shapes as kube-apiserver v1.34 writes them.
const BEFORE = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 2
# HELP apiserver_longrunning_requests [STABLE] Gauge of all active long-running apiserver requests
# TYPE apiserver_longrunning_requests gauge
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="batch",resource="jobs",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
`;

const AFTER = `apiserver_request_total{code="201",component="apiserver",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="POST",version="v1"} 110
apiserver_request_total{code="200",component="apiserver",dry_run="",group="batch",resource="jobs",scope="resource",subresource="",verb="DELETE",version="v1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="log",verb="GET",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 5
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="batch",resource="jobs",scope="namespace",subresource="",verb="WATCH",version="v1"} 2
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
`;

describe("parsePromText", () => {
  test("reads names, labels and values; skips comments", () => {
    const s = parsePromText(BEFORE);
    expect(s).toHaveLength(5);
    expect(s[0]).toEqual({
      name: "apiserver_request_total",
      labels: { code: "201", component: "apiserver", dry_run: "", group: "batch", resource: "jobs", scope: "namespace", subresource: "", verb: "POST", version: "v1" },
      value: 10,
    });
  });

  test("escapes, special values, timestamps and no labels", () => {
    const s = parsePromText('a{x="q\\"uote\\\\ back\\nline",y="}"} +Inf\nb 1.5e3 1700000000000\nc NaN\nd{} -Inf\n');
    expect(s[0]!.labels).toEqual({ x: 'q"uote\\ back\nline', y: "}" });
    expect(s[0]!.value).toBe(Infinity);
    expect(s[1]).toEqual({ name: "b", labels: {}, value: 1500 });
    expect(Number.isNaN(s[2]!.value)).toBe(true);
    expect(s[3]).toEqual({ name: "d", labels: {}, value: -Infinity });
  });

  test("a malformed line is an error, not a dropped series", () => {
    expect(() => parsePromText('ok 1\nbad{x="1" 2\n')).toThrow(/line 2/);
    expect(() => parsePromText("novalue\n")).toThrow(/line 1/);
  });

  test("only keeps the named metrics, not metrics that merely share a prefix", () => {
    const s = parsePromText("a_total 1\na_total_extra 2\nb 3\na_total{x=\"1\"} 4\n", ["a_total"]);
    expect(s.map((x) => x.value)).toEqual([1, 4]);
  });
});

describe("counterIncrease", () => {
  const before = parsePromText(BEFORE);
  const after = parsePromText(AFTER);

  test("per-series increase; new series count from zero; unchanged ones drop out", () => {
    const inc = counterIncrease(before, after, "apiserver_request_total", (l) => l.resource !== "");
    expect(sumBy(inc, verbResourceKey)).toEqual({ "POST jobs": 100, "DELETE jobs": 100, "GET pods/log": 4 });
  });

  test("a counter that went down restarted from zero", () => {
    const inc = counterIncrease(parsePromText("x 10\n"), parsePromText("x 3\n"), "x");
    expect(inc[0]!.value).toBe(3);
  });
});

describe("gaugeAboveBaseline", () => {
  test("sums what each series gained since the baseline, never below zero", () => {
    const watch = (l: Record<string, string>) => l.verb === "WATCH" && l.scope !== "cluster";
    expect(gaugeAboveBaseline(parsePromText(BEFORE), parsePromText(AFTER), "apiserver_longrunning_requests", watch)).toBe(2);
    expect(gaugeAboveBaseline(parsePromText(AFTER), parsePromText(BEFORE), "apiserver_longrunning_requests", watch)).toBe(0);
  });
});

describe("keys", () => {
  test("seriesKey ignores label order", () => {
    expect(seriesKey("m", { b: "2", a: "1" })).toBe(seriesKey("m", { a: "1", b: "2" }));
  });

  test("verbResourceKey", () => {
    expect(verbResourceKey({ verb: "GET", resource: "pods", subresource: "log" })).toBe("GET pods/log");
    expect(verbResourceKey({ verb: "WATCH", resource: "jobs", subresource: "" })).toBe("WATCH jobs");
  });
});

describe("histogramQuantile", () => {
  // apiserver_request_duration_seconds_bucket increases: 10 requests ≤ 50 ms, 30 more ≤ 100 ms, 40 in all.
  const buckets = [
    { le: 0.025, count: 0 },
    { le: 0.05, count: 10 },
    { le: 0.1, count: 40 },
    { le: Infinity, count: 40 },
  ];
  test("interpolates within the bucket that holds the rank", () => {
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.05 + 0.05 * (10 / 30), 6);
    expect(histogramQuantile(0.25, buckets)).toBeCloseTo(0.05, 6);
  });
  test("a rank in +Inf answers the largest finite bound; no observations answers undefined", () => {
    expect(histogramQuantile(0.99, [...buckets.slice(0, 3), { le: Infinity, count: 50 }])).toBe(0.1);
    expect(histogramQuantile(0.5, [{ le: 0.1, count: 0 }, { le: Infinity, count: 0 }])).toBeUndefined();
  });
});
