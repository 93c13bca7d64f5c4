package awstest

import (
	"encoding/xml"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// StackNetwork makes, on moto, what the stack mode (providers/cfnstack)
// expects to exist in an account, with cfg's credentials: it returns the
// VPC of subnets (made by Subnets) and the ARN of the HTTP listener of a
// new load balancer named Name(t, lbName) in them, answering 404 by
// default. It also lets the VPC give network interfaces DNS names, which
// moto's ECS needs to run a task in awsvpc mode.
func StackNetwork(t testing.TB, cfg aws.Config, subnets []string, sg, lbName string) (vpc, listener string) {
	t.Helper()
	ctx := t.Context()
	body, err := Query(ctx, cfg, "ec2", url.Values{"Action": {"DescribeSubnets"}, "SubnetId.1": {subnets[0]}})
	if err != nil {
		t.Fatalf("DescribeSubnets: %v", err)
	}
	var sn struct {
		VPC string `xml:"subnetSet>item>vpcId"`
	}
	if err := xml.Unmarshal(body, &sn); err != nil || sn.VPC == "" {
		t.Fatalf("DescribeSubnets: no VPC in %q (%v)", body, err)
	}
	// moto's ECS fails a RunTask in awsvpc mode (HTTP 500) unless the
	// VPC gives network interfaces DNS names; AWS runs a task in any VPC
	// ("enableDnsHostnames" only decides whether instances get public DNS
	// hostnames, Amazon VPC User Guide, DNS attributes for your VPC).
	if _, err := Query(ctx, cfg, "ec2", url.Values{"Action": {"ModifyVpcAttribute"}, "VpcId": {sn.VPC}, "EnableDnsHostnames.Value": {"true"}}); err != nil {
		t.Fatalf("ModifyVpcAttribute: %v", err)
	}
	elb := elbv2.NewFromConfig(cfg)
	lb, err := elb.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{Name: aws.String(Name(t, lbName)), Subnets: subnets, SecurityGroups: []string{sg}})
	if err != nil {
		t.Fatalf("CreateLoadBalancer: %v", err)
	}
	l, err := elb.CreateListener(ctx, &elbv2.CreateListenerInput{
		LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Port: aws.Int32(80), Protocol: elbv2types.ProtocolEnumHttp,
		DefaultActions: []elbv2types.Action{{Type: elbv2types.ActionTypeEnumFixedResponse, FixedResponseConfig: &elbv2types.FixedResponseActionConfig{StatusCode: aws.String("404")}}},
	})
	if err != nil {
		t.Fatalf("CreateListener: %v", err)
	}
	return sn.VPC, aws.ToString(l.Listeners[0].ListenerArn)
}
