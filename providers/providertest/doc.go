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
package providertest
