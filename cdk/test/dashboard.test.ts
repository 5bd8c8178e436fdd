// infra/dashboard.yaml reads metrics the code publishes, under the names, namespace and
// dimensions it publishes them with, and watches every dead-letter queue template.yaml has.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, readTemplate } from '../lib/project';

const app = readTemplate('template.yaml');
const dashboard = readTemplate('infra/dashboard.yaml');
const parameters: Record<string, string> = {
  AppStackName: 'sluice-prod',
  ApiUrl: 'https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com',
  'AWS::Region': 'eu-west-1',
};

/** The intrinsics the dashboard uses, evaluated as CloudFormation would. */
function evaluate(node: any, variables: Record<string, string>): any {
  if (typeof node !== 'object' || node === null) return node;
  if (Array.isArray(node)) return node.map((item) => evaluate(item, variables));
  const [intrinsic, value] = Object.entries<any>(node)[0] ?? [];
  switch (intrinsic) {
    case 'Ref':
      return variables[value];
    case 'Fn::Sub': {
      const [text, extra] = typeof value === 'string' ? [value, {}] : value;
      const scope = { ...variables, ...evaluate(extra, variables) };
      return text.replace(/\$\{([^}]+)\}/g, (_: string, name: string) => {
        expect(scope).toHaveProperty([name]);
        return scope[name];
      });
    }
    case 'Fn::Join':
      return evaluate(value[1], variables).join(value[0]);
    case 'Fn::Select':
      return evaluate(value[1], variables)[value[0]];
    case 'Fn::Split':
      return evaluate(value[1], variables).split(value[0]);
    default:
      return Object.fromEntries(Object.entries(node).map(([key, item]) => [key, evaluate(item, variables)]));
  }
}

const body = JSON.parse(evaluate(dashboard.Resources.Dashboard.Properties.DashboardBody, parameters));
const searches: string[] = body.widgets.flatMap((widget: any) => widget.properties.metrics.flat().map((m: any) => m.expression));

/** SEARCH('{namespace,dimension,...} terms', 'statistic', period), its parts. */
function parseSearch(expression: string) {
  const [, schema, terms] = /^SEARCH\('\{([^}]*)\} (.*)', '[^']+', \d+\)$/.exec(expression) ?? [];
  expect(schema).toBeDefined();
  const [namespace, ...dimensions] = schema.split(',').map((part) => part.replace(/^"(.*)"$/, '$1'));
  return { namespace, dimensions, terms, metric: /MetricName="([^"]+)"/.exec(terms)?.[1] };
}

/** The Rust sources' string literals, where metric and dimension names are spelled. */
function rustSources(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return rustSources(path);
    return name.endsWith('.rs') ? [readFileSync(path, 'utf8')] : [];
  });
}
const code = ['crates', 'functions'].flatMap((directory) => rustSources(join(ROOT, directory))).join('\n');

test('every graph is a search CloudWatch accepts (at most 1024 characters)', () => {
  expect(searches.length).toBe(body.widgets.flatMap((widget: any) => widget.properties.metrics).length);
  for (const search of searches) {
    expect(search.length).toBeLessThanOrEqual(1024);
    parseSearch(search);
  }
});

test('the API graphs are of the stack\'s API, by route', () => {
  const api = searches.map(parseSearch).filter((search) => search.namespace === 'AWS/ApiGateway');
  expect(api.length).toBeGreaterThan(0);
  for (const search of api) {
    expect(search.dimensions).toEqual(['ApiId', 'Method', 'Resource', 'Stage']);
    expect(search.terms).toContain('ApiId="a1b2c3d4e5"');
  }
});

test('the app\'s metrics are read from the namespace its functions publish to, by names and dimensions the code uses', () => {
  expect(app.Globals.Function.Environment.Variables.METRICS_NAMESPACE).toEqual({ 'Fn::Sub': 'Sluice/${AWS::StackName}' });
  const own = searches.map(parseSearch).filter((search) => search.namespace.startsWith('Sluice'));
  expect(own.map((search) => search.metric).sort()).toEqual(
    ['AccuracyDrop', 'DriftScore', 'DriftingFeatures', 'Errors', 'InferenceLatency', 'RmseIncrease', 'Rows', 'ServerErrors'],
  );
  for (const { namespace, dimensions, metric } of own) {
    expect(namespace).toBe('Sluice/sluice-prod');
    for (const name of [metric, ...dimensions]) {
      expect(code).toContain(`"${name}"`);
    }
  }
});

test('the dead-letter queue graphs cover every dead-letter queue of the app, by its generated name', () => {
  const queues = Object.entries<any>(app.Resources)
    .filter(([id, resource]) => resource.Type === 'AWS::SQS::Queue' && id.endsWith('DeadLetterQueue'))
    .map(([id]) => `sluice-prod-${id}`);
  const graphs = searches.map(parseSearch).filter((search) => search.namespace === 'AWS/SQS');
  expect(graphs.length).toBe(2);
  for (const { terms } of graphs) {
    expect(/\((.*)\)$/.exec(terms)?.[1].split(' OR ').sort()).toEqual(queues.sort());
  }
});

test('the training graph counts the events the register function\'s EventBridge rules deliver', () => {
  const events = Object.values<any>(app.Resources.RegisterFunction.Properties.Events);
  expect(events.map((event) => event.Type)).toContain('EventBridgeRule');
  const [rules] = searches.map(parseSearch).filter((search) => search.namespace === 'AWS/Events');
  expect(rules.terms).toContain('sluice-prod-RegisterFunction');
});
