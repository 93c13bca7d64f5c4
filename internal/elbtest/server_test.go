package elbtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/elbtest"
)

func newClient(t *testing.T) (*elbtest.Server, *elb.Client) {
	srv := elbtest.New(t)
	cfg := awstest.ConfigFor(srv.URL)
	cfg.RetryMaxAttempts = 1
	return srv, elb.NewFromConfig(cfg)
}

var httpListener = types.Listener{Protocol: aws.String("HTTP"), LoadBalancerPort: 80, InstanceProtocol: aws.String("HTTP"), InstancePort: aws.Int32(8080)}

func create(t *testing.T, c *elb.Client, name string) string {
	t.Helper()
	out, err := c.CreateLoadBalancer(t.Context(), &elb.CreateLoadBalancerInput{
		LoadBalancerName: aws.String(name), Listeners: []types.Listener{httpListener}, Subnets: []string{"subnet-1"},
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("web")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.DNSName)
}

var ignoreSDK = cmpopts.IgnoreUnexported(types.LoadBalancerDescription{}, types.ListenerDescription{}, types.Listener{},
	types.HealthCheck{}, types.Instance{}, types.InstanceState{}, types.TagDescription{}, types.Tag{}, types.Policies{},
	types.SourceSecurityGroup{}, types.LoadBalancerAttributes{}, types.ConnectionDraining{}, types.ConnectionSettings{},
	types.CrossZoneLoadBalancing{}, types.AccessLog{})

func TestDescribeLoadBalancersParsesEveryField(t *testing.T) {
	_, c := newClient(t)
	dns := create(t, c, "shop-web")
	if _, err := c.RegisterInstancesWithLoadBalancer(t.Context(), &elb.RegisterInstancesWithLoadBalancerInput{
		LoadBalancerName: aws.String("shop-web"), Instances: []types.Instance{{InstanceId: aws.String("i-2")}, {InstanceId: aws.String("i-1")}},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeLoadBalancers(t.Context(), &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{"shop-web"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []types.LoadBalancerDescription{{
		LoadBalancerName: aws.String("shop-web"), DNSName: aws.String(dns), CanonicalHostedZoneName: aws.String(dns),
		CanonicalHostedZoneNameID: aws.String("Z35SXDOTRQ7X7K"), CreatedTime: out.LoadBalancerDescriptions[0].CreatedTime,
		AvailabilityZones: []string{"us-east-1a"}, Subnets: []string{"subnet-1"}, Scheme: aws.String("internet-facing"), VPCId: aws.String("vpc-00000001"),
		HealthCheck:          &types.HealthCheck{Target: aws.String("TCP:8080"), Interval: aws.Int32(30), Timeout: aws.Int32(5), UnhealthyThreshold: aws.Int32(2), HealthyThreshold: aws.Int32(10)},
		Instances:            []types.Instance{{InstanceId: aws.String("i-1")}, {InstanceId: aws.String("i-2")}},
		ListenerDescriptions: []types.ListenerDescription{{Listener: &httpListener}},
	}}
	if diff := cmp.Diff(want, out.LoadBalancerDescriptions, ignoreSDK, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("DescribeLoadBalancers (-want +got):\n%s", diff)
	}
	if out.LoadBalancerDescriptions[0].CreatedTime == nil {
		t.Error("CreatedTime is not set")
	}
}

func TestErrorsAreWhatAWSAnswers(t *testing.T) {
	srv, c := newClient(t)
	create(t, c, "shop-web")
	ctx := t.Context()
	tests := []struct {
		name     string
		call     func(context.Context) error
		wantCode string
	}{
		{"describing a missing load balancer is LoadBalancerNotFound, not an empty list", func(ctx context.Context) error {
			_, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{"nope"}})
			return err
		}, "LoadBalancerNotFound"},
		{"a create with other settings under a taken name is DuplicateLoadBalancerName", func(ctx context.Context) error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{LoadBalancerName: aws.String("shop-web"), Listeners: []types.Listener{httpListener}, Subnets: []string{"subnet-2"}})
			return err
		}, "DuplicateLoadBalancerName"},
		{"a listener on a taken port with other settings is DuplicateListener", func(ctx context.Context) error {
			l := httpListener
			l.InstancePort = aws.Int32(9090)
			_, err := c.CreateLoadBalancerListeners(ctx, &elb.CreateLoadBalancerListenersInput{LoadBalancerName: aws.String("shop-web"), Listeners: []types.Listener{l}})
			return err
		}, "DuplicateListener"},
		{"a bad name is ValidationError", func(ctx context.Context) error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{LoadBalancerName: aws.String("-bad"), Listeners: []types.Listener{httpListener}, Subnets: []string{"s"}})
			return err
		}, "ValidationError"},
		{"an HTTPS listener without certificate is ValidationError", func(ctx context.Context) error {
			l := types.Listener{Protocol: aws.String("HTTPS"), LoadBalancerPort: 443, InstancePort: aws.Int32(8080)}
			_, err := c.CreateLoadBalancerListeners(ctx, &elb.CreateLoadBalancerListenersInput{LoadBalancerName: aws.String("shop-web"), Listeners: []types.Listener{l}})
			return err
		}, "ValidationError"},
		{"a health check timeout not under the interval is ValidationError", func(ctx context.Context) error {
			_, err := c.ConfigureHealthCheck(ctx, &elb.ConfigureHealthCheckInput{LoadBalancerName: aws.String("shop-web"), HealthCheck: &types.HealthCheck{
				Target: aws.String("HTTP:8080/"), Interval: aws.Int32(5), Timeout: aws.Int32(5), HealthyThreshold: aws.Int32(2), UnhealthyThreshold: aws.Int32(2)}})
			return err
		}, "ValidationError"},
		{"a health check target without path is ValidationError", func(ctx context.Context) error {
			_, err := c.ConfigureHealthCheck(ctx, &elb.ConfigureHealthCheckInput{LoadBalancerName: aws.String("shop-web"), HealthCheck: &types.HealthCheck{
				Target: aws.String("HTTP:8080"), Interval: aws.Int32(10), Timeout: aws.Int32(5), HealthyThreshold: aws.Int32(2), UnhealthyThreshold: aws.Int32(2)}})
			return err
		}, "ValidationError"},
		{"the health of a missing load balancer is LoadBalancerNotFound", func(ctx context.Context) error {
			_, err := c.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String("nope")})
			return err
		}, "LoadBalancerNotFound"},
		{"deregistering an instance not registered is InvalidInstance", func(ctx context.Context) error {
			_, err := c.DeregisterInstancesFromLoadBalancer(ctx, &elb.DeregisterInstancesFromLoadBalancerInput{LoadBalancerName: aws.String("shop-web"), Instances: []types.Instance{{InstanceId: aws.String("i-9")}}})
			return err
		}, "InvalidInstance"},
		{"an injected fault is answered once", func(ctx context.Context) error {
			srv.FailNext("DescribeTags", "Throttling", 400)
			_, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{"shop-web"}})
			if _, again := c.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{"shop-web"}}); again != nil {
				return again
			}
			return err
		}, "Throttling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctx)
			if diff := cmp.Diff(tt.wantCode, awserr.Code(err)); diff != "" {
				t.Errorf("error code (-want +got):\n%s (error: %v)", diff, err)
			}
		})
	}
}

func TestRepeatsThatAWSAccepts(t *testing.T) {
	_, c := newClient(t)
	dns := create(t, c, "shop-web")
	ctx := t.Context()
	tests := []struct {
		name string
		call func(context.Context) error
	}{
		{"an identical create returns the existing load balancer", func(ctx context.Context) error {
			if again := create(t, c, "shop-web"); again != dns {
				return errors.New("the DNS name changed: " + again)
			}
			return nil
		}},
		{"an identical listener is accepted", func(ctx context.Context) error {
			_, err := c.CreateLoadBalancerListeners(ctx, &elb.CreateLoadBalancerListenersInput{LoadBalancerName: aws.String("shop-web"), Listeners: []types.Listener{httpListener}})
			return err
		}},
		{"deleting a missing listener port succeeds", func(ctx context.Context) error {
			_, err := c.DeleteLoadBalancerListeners(ctx, &elb.DeleteLoadBalancerListenersInput{LoadBalancerName: aws.String("shop-web"), LoadBalancerPorts: []int32{8443}})
			return err
		}},
		{"deleting a missing load balancer succeeds", func(ctx context.Context) error {
			_, err := c.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerName: aws.String("nope")})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(ctx); err != nil {
				t.Errorf("got %v, want success", err)
			}
		})
	}
}

func TestDescribeLoadBalancersPages(t *testing.T) {
	_, c := newClient(t)
	for _, n := range []string{"c", "a", "b"} {
		create(t, c, n)
	}
	var got []string
	p := elb.NewDescribeLoadBalancersPaginator(c, &elb.DescribeLoadBalancersInput{PageSize: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, d := range out.LoadBalancerDescriptions {
			got = append(got, aws.ToString(d.LoadBalancerName))
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if pages != 2 {
		t.Errorf("%d pages of 2, want 2", pages)
	}
}

func TestAttributesHealthAndTags(t *testing.T) {
	srv, c := newClient(t)
	create(t, c, "shop-web")
	ctx := t.Context()
	name := aws.String("shop-web")

	t.Run("connection draining is set and read back", func(t *testing.T) {
		if _, err := c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerName: name,
			LoadBalancerAttributes: &types.LoadBalancerAttributes{ConnectionDraining: &types.ConnectionDraining{Enabled: true, Timeout: aws.Int32(45)}}}); err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerName: name})
		if err != nil {
			t.Fatal(err)
		}
		want := &types.ConnectionDraining{Enabled: true, Timeout: aws.Int32(45)}
		if diff := cmp.Diff(want, out.LoadBalancerAttributes.ConnectionDraining, ignoreSDK); diff != "" {
			t.Errorf("connection draining (-want +got):\n%s", diff)
		}
	})

	t.Run("registered instances are in service until the test says otherwise", func(t *testing.T) {
		if _, err := c.RegisterInstancesWithLoadBalancer(ctx, &elb.RegisterInstancesWithLoadBalancerInput{LoadBalancerName: name,
			Instances: []types.Instance{{InstanceId: aws.String("i-1")}, {InstanceId: aws.String("i-2")}}}); err != nil {
			t.Fatal(err)
		}
		failing := elbtest.InstanceState{State: "OutOfService", ReasonCode: "Instance", Description: "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."}
		if err := srv.SetInstanceState("shop-web", "i-2", failing); err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: name})
		if err != nil {
			t.Fatal(err)
		}
		want := []types.InstanceState{
			{InstanceId: aws.String("i-1"), State: aws.String("InService"), ReasonCode: aws.String("N/A"), Description: aws.String("N/A")},
			{InstanceId: aws.String("i-2"), State: aws.String("OutOfService"), ReasonCode: aws.String("Instance"), Description: aws.String(failing.Description)},
		}
		if diff := cmp.Diff(want, out.InstanceStates, ignoreSDK); diff != "" {
			t.Errorf("instance health (-want +got):\n%s", diff)
		}
	})

	t.Run("tags of the create and of AddTags are listed in order", func(t *testing.T) {
		if _, err := c.AddTags(ctx, &elb.AddTagsInput{LoadBalancerNames: []string{"shop-web"}, Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("shop")}}}); err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{"shop-web"}})
		if err != nil {
			t.Fatal(err)
		}
		want := []types.TagDescription{{LoadBalancerName: name, Tags: []types.Tag{
			{Key: aws.String("team"), Value: aws.String("web")}, {Key: aws.String("app"), Value: aws.String("shop")}}}}
		if diff := cmp.Diff(want, out.TagDescriptions, ignoreSDK); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
	})

	t.Run("every call is counted", func(t *testing.T) {
		if diff := cmp.Diff(2, srv.Calls("DescribeTags")+srv.Calls("AddTags")); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
}
