// Every function in template.yaml names a binary that exists in the workspace, built the way
// buildspec.yml's `sam build` builds it: cargo-lambda (BuildMethod) for Lambda's arm64
// custom runtime. A renamed crate or binary fails here, not in CodeBuild an hour later.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, readTemplate, readToml } from '../lib/project';

const template = readTemplate('template.yaml');
const functions = Object.entries<any>(template.Resources).filter(([, resource]) => resource.Type === 'AWS::Serverless::Function');
const workspaceMembers: string[] = readToml('Cargo.toml').workspace.members;

test('the template has functions, all on arm64 and the custom runtime', () => {
  expect(functions.length).toBeGreaterThan(0);
  expect(template.Globals.Function).toMatchObject({ Runtime: 'provided.al2023', Handler: 'bootstrap', Architectures: ['arm64'] });
  for (const [, resource] of functions) {
    expect(resource.Properties).not.toHaveProperty('Architectures');
    expect(resource.Properties).not.toHaveProperty('Runtime');
  }
});

test.each(functions)('%s is built by cargo-lambda from a binary of a workspace member', (_, resource) => {
  expect(resource.Metadata?.BuildMethod).toBe('rust-cargolambda');
  const crate: string = resource.Properties.CodeUri;
  expect(workspaceMembers).toContain(crate);
  const binary: string = resource.Metadata.BuildProperties?.Binary;
  const bins: { name: string; path: string }[] = readToml(join(crate, 'Cargo.toml')).bin ?? [];
  const bin = bins.find((b) => b.name === binary);
  expect(bin).toBeDefined();
  expect(existsSync(join(ROOT, crate, bin!.path))).toBe(true);
});
