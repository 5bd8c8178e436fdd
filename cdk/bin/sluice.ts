// The CDK app: the delivery pipeline stack, environment-agnostic so `cdk synth` needs no AWS
// account (`cdk deploy` deploys it to the CLI's account and region).
import { App } from 'aws-cdk-lib';
import { PipelineStack, sourceFromContext } from '../lib/pipeline';

const app = new App();
new PipelineStack(app, 'sluice-pipeline', {
  description: 'Sluice delivery: commit -> build and test -> dev -> smoke test -> approval -> prod.',
  source: sourceFromContext((key) => app.node.tryGetContext(key)),
});
