// Package providertest is the executable contract of package providers:
// one conformance suite per provider interface, run by every provider —
// the fake, the local rack, the AWS providers and third-party ones.
//
// Each suite takes a factory (or a harness struct holding one) and runs
// one subtest per rule, named for the rule it checks ("Get/missing key
// returns ErrNotFound", "Put/create-only on an existing key returns
// ErrConflict", ...). Optional capabilities (ImageLister, ImageDeleter,
// BatchStatus, Canceler, Stager, TaskRunner, WeightShifter, LogTailer) are
// detected by type assertion and checked in a subtest named for the
// capability; a provider without one skips nothing else.
//
// Every case uses names of its own (app names, store keys, repositories
// with a random per-run part), so a factory may return one shared instance
// for a slow backend, and leftovers of an earlier run never collide.
// Cases clean up what they create.
//
// A provider's conformance test:
//
//	func TestConformance(t *testing.T) {
//		providertest.TestStore(t, func(t *testing.T) providers.Store {
//			return mystore.New(t.TempDir())
//		})
//		providertest.TestScheduler(t, providertest.SchedulerHarness{
//			New: func(t *testing.T) providertest.SchedulerSetup {
//				rack := newRack(t)
//				return providertest.SchedulerSetup{
//					Scheduler: rack.Scheduler,
//					Image:     rack.PushTestImage(t),
//					Processes: []providers.Process{
//						{Name: "web", Count: 2, Port: 8080},
//						{Name: "worker", Count: 1},
//					},
//				}
//			},
//			Poll:    time.Second,
//			Timeout: 2 * time.Minute,
//		})
//	}
//
// Waits (a scheduler converging, logs becoming readable) poll with the
// harness's interval, so an in-memory provider is observed without
// pausing and a real one every few seconds.
//
// # Rule groups
//
// Each suite runs one subtest per rule group — TestStore's Get, Put,
// Keys, Delete, List, Concurrency and Context, TestScheduler's Status,
// Apply, Delete, Concurrency, Crash, Binding, Logs, the capabilities and
// Context, and so on — and each group one subtest per rule, so a group or
// a rule runs alone with -run:
//
//	go test -run 'TestConformance/Store/List/' ./mystore
//	go test -run 'TestConformance/Store/Concurrency/racing_Puts' ./mystore
//
// # Races
//
// The rules that check an operation is atomic (a compare-and-swap Put, a
// conditional Delete, concurrent Writes, concurrent Applies of one token)
// run several goroutines released together, on at least two processors,
// for thousands of rounds: a window of a few instructions between a check
// and a write is found because some racer is preempted inside it while
// another runs the same round. Their time is bounded by the rounds and by
// a budget of a few seconds for slow backends, which ends the race early
// and is never asserted on.
//
// # Mutation score
//
// The suites are tested by mutation: the package's own tests hold
// mutants, providers that each break one rule (purpose-built in-memory
// Stores and Logs, and wrappers around the fake rack's Registry, Balancer
// and Scheduler), and require the suite to fail on each, in the rule the
// mutant breaks; the unmutated providers must pass. Mutants caught of
// mutants run:
//
//	Store          27/27   (among them a compare-and-swap whose check and
//	                        write take separate locks, list tokens that are
//	                        offsets, versions that restart after a delete)
//	Logs           20/20   (page tokens that are offsets bound to their
//	                        query, tokens reused across queries, tokens that
//	                        hold only a time, wrong order at equal times)
//	LogTailer       4/4
//	Registry        8/8
//	ImageLister     2/2
//	ImageDeleter    2/2
//	Balancer        6/6
//	WeightShifter   4/4
//	Scheduler      11/11
//	BatchStatus     1/1
//	Canceler        1/1
//	Stager          2/2
//	TaskRunner      2/2
//	total          90/90
//
// A mutant that survives is a rule the suite lacks: add the rule and
// keep the mutant.
package providertest
