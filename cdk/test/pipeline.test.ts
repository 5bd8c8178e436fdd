import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { parse as parseYaml } from 'yaml';
import { PipelineStack, SMOKE_DATASET, SMOKE_MODEL, TRAINER_REPOSITORY, sourceFromContext } from '../lib/pipeline';
import { ROOT, stageSettings } from '../lib/project';

// As `cdk synth` builds it: cdk.json's context, plus what a test overrides.
const cdkJsonContext = JSON.parse(readFileSync(join(__dirname, '..', 'cdk.json'), 'utf8')).context;
function synthesize(context: Record<string, string> = {}) {
  const app = new App({ context: { ...cdkJsonContext, ...context } });
  const stack = new PipelineStack(app, 'pipeline', { source: sourceFromContext((key) => app.node.tryGetContext(key)) });
  return Template.fromStack(stack);
}

const template = synthesize();
type Json = any;
const stages: Json[] = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0].Properties.Stages;
const stage = (name: string) => stages.find((s) => s.Name === name);
const action = (stageName: string, actionName: string) => stage(stageName).Actions.find((a: Json) => a.Name === actionName);
const projectWithBuildSpec = (pattern: RegExp): Json =>
  Object.values(template.findResources('AWS::CodeBuild::Project')).find((p: Json) => pattern.test(p.Properties.Source.BuildSpec));
const dev = stageSettings('dev');
const prod = stageSettings('prod');

test('a commit goes through source, infra, build, dev, smoke test, approval and prod, in that order', () => {
  expect(stages.map((s) => s.Name)).toEqual(['Source', 'Infra', 'Build', 'Dev', 'SmokeTest', 'ApproveProd', 'Prod']);
});

test('the build project runs buildspec.yml on an x86_64 image with Docker, with the variables it reads', () => {
  const project = projectWithBuildSpec(/^buildspec\.yml$/);
  expect(project.Properties.Environment).toMatchObject({
    Type: 'LINUX_CONTAINER',
    Image: 'aws/codebuild/amazonlinux-x86_64-standard:5.0',
    PrivilegedMode: true,
  });
  const projectVariables = project.Properties.Environment.EnvironmentVariables.map((v: Json) => v.Name);
  const actionVariables = JSON.parse(action('Build', 'TestBuildPackage').Configuration.EnvironmentVariables);
  const buildspec = readFileSync(join(ROOT, 'buildspec.yml'), 'utf8');
  for (const variable of ['PACKAGE_BUCKET', 'TRAINER_REPOSITORY_URI', 'COMMIT_ID']) {
    expect(buildspec).toContain(`$${variable}`);
    expect([...projectVariables, ...actionVariables.map((v: Json) => v.name)]).toContain(variable);
  }
  expect(actionVariables).toContainEqual({ name: 'COMMIT_ID', type: 'PLAINTEXT', value: expect.stringMatching(/^#\{.*CommitId\}$/) });
});

test('the build leaves what the deploy actions read: the packaged template and each stage\'s configuration', () => {
  const buildspec = parseYaml(readFileSync(join(ROOT, 'buildspec.yml'), 'utf8'));
  const directory = buildspec.artifacts['base-directory'];
  const commands = buildspec.phases.build.commands.join('\n');
  expect(commands).toContain(`--output-template-file ${directory}/packaged.yaml`);
  expect(commands).toContain(`npx ts-node bin/stage-config.ts ../${directory} `);
});

test('the trainer repository is deployed before the build, which may push to it alone', () => {
  expect(action('Infra', 'TrainerRepository').Configuration).toMatchObject({
    ActionMode: 'CREATE_UPDATE',
    TemplatePath: 'Source::infra/trainer-repository.yaml',
    ParameterOverrides: JSON.stringify({ RepositoryName: TRAINER_REPOSITORY }),
  });
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: Match.arrayWith(['ecr:PutImage']),
          Resource: { 'Fn::Join': ['', Match.arrayWith([`:repository/${TRAINER_REPOSITORY}`])] },
        }),
      ]),
    },
  });
});

test.each([
  ['Dev', 'dev', dev.stackName],
  ['Prod', 'prod', prod.stackName],
])('%s deploys the packaged template.yaml to samconfig.toml\'s stack by a change set, then its dashboard', (stageName, stageKey, stackName) => {
  expect(stage(stageName).Actions.map((a: Json) => [a.Name, a.RunOrder])).toEqual([
    ['CreateChangeSet', 1],
    ['ExecuteChangeSet', 2],
    ['Dashboard', 3],
  ]);
  expect(action(stageName, 'CreateChangeSet').Configuration).toMatchObject({
    ActionMode: 'CHANGE_SET_REPLACE',
    StackName: stackName,
    ChangeSetName: 'pipeline',
    TemplatePath: 'Built::packaged.yaml',
    TemplateConfiguration: `Built::${stageKey}.json`,
  });
  expect(action(stageName, 'ExecuteChangeSet').Configuration).toMatchObject({
    ActionMode: 'CHANGE_SET_EXECUTE',
    StackName: stackName,
    ChangeSetName: 'pipeline',
  });
  const dashboard = action(stageName, 'Dashboard').Configuration;
  expect(dashboard.TemplatePath).toBe('Source::infra/dashboard.yaml');
  expect(JSON.parse(dashboard.ParameterOverrides)).toEqual({
    AppStackName: stackName,
    ApiUrl: { 'Fn::GetParam': [`${stageKey}Outputs`, 'outputs.json', 'ApiUrl'] },
  });
});

test('dev and prod are different stacks', () => {
  expect(dev.stackName).not.toBe(prod.stackName);
});

test('the smoke test calls dev\'s API after dev is deployed, with a role that may call only its routes', () => {
  expect(stages.findIndex((s) => s.Name === 'SmokeTest')).toBe(stages.findIndex((s) => s.Name === 'Dev') + 1);
  const project = projectWithBuildSpec(/scripts\/smoke\.py/);
  expect(project.Properties.Source.BuildSpec).toContain(
    `python scripts/smoke.py --stack ${dev.stackName} --dataset ${SMOKE_DATASET} --model ${SMOKE_MODEL}`,
  );
  const statements: Json[] = Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((policy: Json) => policy.Properties.Roles.some((role: Json) => role.Ref === project.Properties.ServiceRole['Fn::GetAtt'][0]))
    .flatMap((policy: Json) => policy.Properties.PolicyDocument.Statement);
  const invoke = statements.find((s) => s.Action === 'execute-api:Invoke');
  const routes = invoke.Resource.map((arn: Json) => arn['Fn::Join'][1].at(-1));
  expect(routes).toEqual([
    `:*/*/POST/datasets/${SMOKE_DATASET}/records`,
    `:*/*/GET/datasets/${SMOKE_DATASET}/ingests/*`,
    ':*/*/GET/models',
    `:*/*/POST/models/${SMOKE_MODEL}/predict`,
  ]);
  const describe = statements.find((s) => s.Action === 'cloudformation:DescribeStacks');
  expect(describe.Resource['Fn::Join'][1].at(-1)).toBe(`:stack/${dev.stackName}/*`);
});

test('prod waits for a manual approval, after the smoke test', () => {
  const index = (name: string) => stages.findIndex((s) => s.Name === name);
  expect(index('SmokeTest')).toBeLessThan(index('ApproveProd'));
  expect(index('ApproveProd')).toBe(index('Prod') - 1);
  expect(stage('ApproveProd').Actions).toEqual([
    expect.objectContaining({ ActionTypeId: expect.objectContaining({ Category: 'Approval', Provider: 'Manual' }) }),
  ]);
});

test('CloudFormation deploys with its own role, which only CloudFormation can assume', () => {
  const roleArns = stages.flatMap((s) => s.Actions)
    .filter((a: Json) => a.ActionTypeId.Provider === 'CloudFormation' && a.Configuration.RoleArn)
    .map((a: Json) => a.Configuration.RoleArn['Fn::GetAtt'][0]);
  expect(new Set(roleArns).size).toBe(1);
  const role = template.findResources('AWS::IAM::Role')[roleArns[0]];
  expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
    expect.objectContaining({ Principal: { Service: 'cloudformation.amazonaws.com' } }),
  ]);
});

test('the pipeline stack defines the pipeline only, none of the app\'s resources', () => {
  const types = new Set(Object.values(template.toJSON().Resources).map((r: Json) => r.Type));
  expect([...types].sort()).toEqual([
    'AWS::CodeBuild::Project',
    'AWS::CodePipeline::Pipeline',
    'AWS::Events::Rule', // starts the pipeline on a CodeCommit push
    'AWS::IAM::Policy',
    'AWS::IAM::Role',
    'AWS::S3::Bucket', // artifacts and the build cache
    'AWS::S3::BucketPolicy',
  ]);
});

test('source: CodeCommit by default, GitHub through a CodeStar connection when the context says so', () => {
  expect(action('Source', 'CodeCommit').Configuration).toMatchObject({ RepositoryName: 'sluice', BranchName: 'main' });
  const connectionArn = 'arn:aws:codestar-connections:eu-west-1:123456789012:connection/example';
  const github = synthesize({ source: 'github', repository: 'acme/sluice', connectionArn });
  const source = Object.values(github.findResources('AWS::CodePipeline::Pipeline'))[0].Properties.Stages[0].Actions[0];
  expect(source.ActionTypeId.Provider).toBe('CodeStarSourceConnection');
  expect(source.Configuration).toMatchObject({ ConnectionArn: connectionArn, FullRepositoryId: 'acme/sluice', BranchName: 'main' });
});

test('a GitHub source needs owner/name and a connection', () => {
  const context = (values: Record<string, string>) => (key: string) => ({ ...cdkJsonContext, source: 'github', ...values })[key];
  expect(() => sourceFromContext(context({ repository: 'acme/sluice' }))).toThrow(/connectionArn/);
  expect(() => sourceFromContext(context({ repository: 'sluice', connectionArn: 'arn' }))).toThrow(/owner\/name/);
  expect(() => sourceFromContext(context({ source: 'svn' }))).toThrow(/codecommit or github/);
});
