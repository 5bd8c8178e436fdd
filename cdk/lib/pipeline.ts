// The delivery pipeline: a commit is built and tested (buildspec.yml), deployed to dev with a
// CloudFormation change set, smoke-tested through dev's API, approved by hand, and deployed
// to prod the same way. It deploys the packaged template.yaml and the templates in infra/;
// it defines none of the application's resources itself.
import { CfnCapabilities, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codecommit from 'aws-cdk-lib/aws-codecommit';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { Stage, stageConfigurationFile, stageSettings } from './project';

/** Where commits come from: a CodeCommit repository, or GitHub through a CodeStar connection. */
export type SourceSettings =
  | { kind: 'codecommit'; repository: string; branch: string }
  | { kind: 'github'; repository: string; branch: string; connectionArn: string };

/** The source from the app's context (`-c source=github -c repository=owner/name -c connectionArn=...`). */
export function sourceFromContext(context: (key: string) => unknown): SourceSettings {
  const setting = (key: string) => {
    const value = context(key);
    if (typeof value !== 'string' || value === '') {
      throw new Error(`context "${key}" is required (cdk.json, or -c ${key}=...)`);
    }
    return value;
  };
  const kind = setting('source');
  const repository = setting('repository');
  const branch = setting('branch');
  switch (kind) {
    case 'codecommit':
      return { kind, repository, branch };
    case 'github':
      if (!/^[^/]+\/[^/]+$/.test(repository)) {
        throw new Error(`GitHub repository "${repository}" must be owner/name`);
      }
      return { kind, repository, branch, connectionArn: setting('connectionArn') };
    default:
      throw new Error(`context "source" is "${kind}": use codecommit or github`);
  }
}

export interface PipelineStackProps extends StackProps {
  source: SourceSettings;
}

/** The ECR repository infra/trainer-repository.yaml creates, which the build pushes to. */
export const TRAINER_REPOSITORY = 'sluice-trainer';
/** What the smoke test ingests into and predicts with; its role may call only those routes. */
export const SMOKE_DATASET = 'smoke';
export const SMOKE_MODEL = 'iris';
/** The smoke test's only dependency (the version scripts/setup.sh's .venv resolves). */
const SMOKE_BOTOCORE = '1.43.127';
const BUILD_IMAGE = codebuild.LinuxBuildImage.AMAZON_LINUX_2023_5;
const PACKAGED_TEMPLATE = 'packaged.yaml';
const STACK_OUTPUTS = 'outputs.json';

export class PipelineStack extends Stack {
  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);

    // Stage artifacts, the function packages the app stacks' CodeUri point at (kept: a
    // rollback deploys the previous ones again) and the build cache (replaced every build).
    const artifactBucket = new s3.Bucket(this, 'Artifacts', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      lifecycleRules: [{ noncurrentVersionExpiration: Duration.days(1), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
    });
    (artifactBucket.node.defaultChild as s3.CfnBucket).addMetadata('checkov', {
      skip: [{ id: 'CKV_AWS_18', comment: 'Only this stack\'s roles reach the bucket; CloudTrail records their use.' }],
    });
    const pipeline = new codepipeline.Pipeline(this, 'Pipeline', {
      pipelineName: 'sluice',
      pipelineType: codepipeline.PipelineType.V2,
      artifactBucket,
      // One account: no KMS key for cross-account artifacts.
      crossAccountKeys: false,
    });
    // CloudFormation deploys with this role, never the pipeline's. It creates the IAM roles
    // the templates define, which makes anything narrower than administrator a formality;
    // only CloudFormation can assume it and only this pipeline's actions pass it.
    const deploymentRole = new iam.Role(this, 'DeploymentRole', {
      assumedBy: new iam.ServicePrincipal('cloudformation.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AdministratorAccess')],
    });
    const trainerRepository = ecr.Repository.fromRepositoryName(this, 'TrainerRepository', TRAINER_REPOSITORY);
    const source = new codepipeline.Artifact('Source');
    const built = new codepipeline.Artifact('Built');

    const sourceAction = this.sourceAction(props.source, source);
    pipeline.addStage({ stageName: 'Source', actions: [sourceAction] });

    // Before the build, which pushes the trainer image into the repository.
    pipeline.addStage({
      stageName: 'Infra',
      actions: [
        new actions.CloudFormationCreateUpdateStackAction({
          actionName: 'TrainerRepository',
          stackName: `${TRAINER_REPOSITORY}-repository`,
          templatePath: source.atPath('infra/trainer-repository.yaml'),
          parameterOverrides: { RepositoryName: TRAINER_REPOSITORY },
          deploymentRole,
          adminPermissions: false,
        }),
      ],
    });

    const build = new codebuild.PipelineProject(this, 'Build', {
      description: 'Tests a commit, builds the functions and the trainer image, packages the SAM app (buildspec.yml).',
      buildSpec: codebuild.BuildSpec.fromSourceFilename('buildspec.yml'),
      environment: {
        buildImage: BUILD_IMAGE,
        computeType: codebuild.ComputeType.LARGE,
        privileged: true, // docker build of the trainer image
      },
      // In S3, not on the build host: commits come hours apart, after a host's local cache
      // has gone (buildspec.yml names what is cached: the cargo registry and target/).
      cache: codebuild.Cache.bucket(pipeline.artifactBucket, { prefix: 'build-cache' }),
      timeout: Duration.hours(2),
      environmentVariables: {
        PACKAGE_BUCKET: { value: pipeline.artifactBucket.bucketName },
        TRAINER_REPOSITORY_URI: { value: trainerRepository.repositoryUri },
      },
    });
    pipeline.artifactBucket.grantReadWrite(build);
    trainerRepository.grantPush(build);
    trainerRepository.grant(build, 'ecr:DescribeImages');
    pipeline.addStage({
      stageName: 'Build',
      actions: [
        new actions.CodeBuildAction({
          actionName: 'TestBuildPackage',
          project: build,
          input: source,
          outputs: [built],
          environmentVariables: { COMMIT_ID: { value: sourceAction.variables.commitId } },
        }),
      ],
    });

    const dev = stageSettings('dev');
    pipeline.addStage({ stageName: 'Dev', actions: this.deployActions('dev', source, built, deploymentRole) });
    pipeline.addStage({
      stageName: 'SmokeTest',
      actions: [new actions.CodeBuildAction({ actionName: 'SmokeTest', project: this.smokeTest(dev.stackName), input: source })],
    });
    const prod = stageSettings('prod');
    pipeline.addStage({
      stageName: 'ApproveProd',
      actions: [
        new actions.ManualApprovalAction({
          actionName: 'Approve',
          additionalInformation: `This commit passed the smoke test on ${dev.stackName}; approve to deploy it to ${prod.stackName}.`,
        }),
      ],
    });
    pipeline.addStage({ stageName: 'Prod', actions: this.deployActions('prod', source, built, deploymentRole) });
  }

  private sourceAction(settings: SourceSettings, output: codepipeline.Artifact) {
    if (settings.kind === 'github') {
      const [owner, repo] = settings.repository.split('/');
      return new actions.CodeStarConnectionsSourceAction({
        actionName: 'GitHub',
        connectionArn: settings.connectionArn,
        owner,
        repo,
        branch: settings.branch,
        output,
      });
    }
    return new actions.CodeCommitSourceAction({
      actionName: 'CodeCommit',
      repository: codecommit.Repository.fromRepositoryName(this, 'Repository', settings.repository),
      branch: settings.branch,
      output,
    });
  }

  /** A stage's app stack by change set (reviewable in the console before it runs), then its dashboard. */
  private deployActions(stage: Stage, source: codepipeline.Artifact, built: codepipeline.Artifact, deploymentRole: iam.IRole) {
    const { stackName } = stageSettings(stage);
    const changeSetName = 'pipeline';
    const outputs = new codepipeline.Artifact(`${stage}Outputs`);
    return [
      new actions.CloudFormationCreateReplaceChangeSetAction({
        actionName: 'CreateChangeSet',
        runOrder: 1,
        stackName,
        changeSetName,
        templatePath: built.atPath(PACKAGED_TEMPLATE),
        templateConfiguration: built.atPath(stageConfigurationFile(stage)),
        // CAPABILITY_IAM as samconfig.toml gives `sam deploy`; the Serverless transform is a macro.
        cfnCapabilities: [CfnCapabilities.ANONYMOUS_IAM, CfnCapabilities.AUTO_EXPAND],
        deploymentRole,
        adminPermissions: false,
      }),
      new actions.CloudFormationExecuteChangeSetAction({
        actionName: 'ExecuteChangeSet',
        runOrder: 2,
        stackName,
        changeSetName,
        output: outputs,
        outputFileName: STACK_OUTPUTS,
      }),
      new actions.CloudFormationCreateUpdateStackAction({
        actionName: 'Dashboard',
        runOrder: 3,
        stackName: `${stackName}-dashboard`,
        templatePath: source.atPath('infra/dashboard.yaml'),
        parameterOverrides: { AppStackName: stackName, ApiUrl: outputs.getParam(STACK_OUTPUTS, 'ApiUrl') },
        extraInputs: [outputs],
        deploymentRole,
        adminPermissions: false,
      }),
    ];
  }

  /** scripts/smoke.py against the stack's API, signed with a role that may call only the routes it uses. */
  private smokeTest(stackName: string) {
    const project = new codebuild.PipelineProject(this, 'SmokeTest', {
      description: `Ingests a sample through ${stackName}'s API, reads it back, predicts if a model is in production.`,
      environment: { buildImage: BUILD_IMAGE, computeType: codebuild.ComputeType.SMALL },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: {
          install: {
            'runtime-versions': { python: '3.12' },
            commands: [`pip install --quiet botocore==${SMOKE_BOTOCORE}`],
          },
          build: {
            commands: [`python scripts/smoke.py --stack ${stackName} --dataset ${SMOKE_DATASET} --model ${SMOKE_MODEL}`],
          },
        },
      }),
    });
    project.addToRolePolicy(new iam.PolicyStatement({
      actions: ['cloudformation:DescribeStacks'],
      resources: [this.formatArn({ service: 'cloudformation', resource: 'stack', resourceName: `${stackName}/*` })],
    }));
    const routes = [
      `POST/datasets/${SMOKE_DATASET}/records`,
      `GET/datasets/${SMOKE_DATASET}/ingests/*`,
      'GET/models',
      `POST/models/${SMOKE_MODEL}/predict`,
    ];
    project.addToRolePolicy(new iam.PolicyStatement({
      actions: ['execute-api:Invoke'],
      // <api id>/<stage>/<method>/<path>: the API's id is known only once dev is deployed.
      resources: routes.map((route) => this.formatArn({ service: 'execute-api', resource: '*', resourceName: `*/${route}` })),
    }));
    return project;
  }
}
